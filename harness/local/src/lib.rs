//! The local provider: etcd and kube-apiserver as processes, nodes and pods as network namespaces, the real NMI per node.
//!
//! [`LocalCluster::start`] brings up the control plane on 127.0.0.1 and one network namespace per
//! node; [`LocalCluster::start_nmi`] runs the real NMI inside each node namespace and
//! [`LocalCluster::run_mic`] one or two MIC replicas with leader election; each of them, and
//! kube-apiserver, can be stopped, killed and started again while the cluster runs. The harness
//! acts as kubelet ([`LocalCluster::create_pod`]). NMI and MIC use admin (system:masters)
//! credentials. Root-only Linux code.

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
pub use cluster::{
    HealthReading, LocalCluster, LocalNode, LocalPod, METADATA_IP, MicReplicaState, MicSelector,
    NmiStop, StartupTimings, StopSignal,
};
pub use config::{
    Binaries, LocalClusterConfig, MicConfig, NmiConfig, NmiMode, NodeConfig, OwnerKind, PodOwner,
    PodPhase, PodSpec,
};
pub use error::LocalError;
pub use etcd::etcd_args;
pub use iptables::NmiRules;
pub use kubeconfig::render_kubeconfig;
pub use mic::{
    LEADER_ANNOTATION, LeaderLock, MIC_CLIENT_QPS, MIC_POD_NAMESPACE, MIC_RECONCILE_INTERVAL,
    MIC_REPLICATED_LEASE, MIC_SYNC_RETRY, MicCloudConfig, MicFlags, lease_holder, mic_args,
};
pub use nmi::{NmiNodeFlags, STANDARD_RETRIES, kubelet_config_contents, nmi_args};
pub use probe::get_in_namespace;
pub use run_id::{generate_run_id, is_valid_run_id};
pub use state::{CleanReport, clean_leftovers, clean_own_runs, clean_run};
pub use teardown::TeardownReport;
