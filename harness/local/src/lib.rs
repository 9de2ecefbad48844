//! The local provider: etcd and kube-apiserver as processes, nodes and pods as network namespaces, the real NMI per node.
//!
//! [`LocalCluster::start`] brings up the control plane on 127.0.0.1 and one network namespace per
//! node; [`LocalCluster::start_nmi`] runs the real NMI inside each node namespace; the harness acts
//! as kubelet ([`LocalCluster::create_pod`]). NMI uses admin (system:masters) credentials.
//! Root-only Linux code.

mod addressing;
mod apiserver;
mod cluster;
mod config;
mod crds;
mod error;
mod etcd;
mod forwarder;
mod iptables;
mod kubeconfig;
mod mic;
mod nmi;
mod objects;
mod pki;
mod ports;
mod probe;
mod process;
mod run_id;
mod state;
mod teardown;
mod watchers;

pub use addressing::{NodeAddressing, PodAddressPool};
pub use apiserver::apiserver_args;
pub use cluster::{LocalCluster, LocalNode, LocalPod, METADATA_IP, NmiStop, StartupTimings};
pub use config::{
    Binaries, LocalClusterConfig, MicConfig, NmiConfig, NmiMode, NodeConfig, PodSpec,
};
pub use error::LocalError;
pub use etcd::etcd_args;
pub use kubeconfig::render_kubeconfig;
pub use mic::{MIC_RECONCILE_INTERVAL, MIC_SYNC_RETRY, MicCloudConfig, MicFlags, mic_args};
pub use nmi::{NmiNodeFlags, STANDARD_RETRIES, kubelet_config_contents, nmi_args};
pub use probe::get_in_namespace;
pub use run_id::{generate_run_id, is_valid_run_id};
pub use state::{CleanReport, clean_leftovers, clean_own_runs, clean_run};
pub use teardown::TeardownReport;
