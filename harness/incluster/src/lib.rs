//! NMI and MIC in a real cluster, the way upstream installs them: the part every cluster
//! provider shares (a throw-away kind cluster and an existing one alike).
//!
//! - [`manifests`]: upstream's manifests, read from the pinned aad-pod-identity module and
//!   rendered for one [`IdentityDeployment`] (images, flags, namespace, cloud access).
//! - [`apply`]: server-side apply in dependency order, and removal.
//! - [`rollout`]: waiting until the DaemonSet and Deployment run the current template;
//!   deliberate restarts.
//! - [`workload`]: the pods scenarios bind identities to.
//! - [`exec`]: running a command inside a pod.
//! - [`logs`]: NMI's and MIC's logs for failure reports.
//!
//! Everything talks to the cluster through a `kube::Client` the caller provides, and waits
//! through `podid-wait`.

pub mod apply;
pub mod deployment;
pub mod error;
pub mod exec;
pub mod logs;
pub mod manifests;
pub mod object;
pub mod pod_status;
pub mod rollout;
pub mod trust;
pub mod workload;

pub use apply::{
    ApplyOptions, ApplyReport, FIELD_MANAGER, RemoveOptions, RemoveReport, apply, apply_objects,
    remove,
};
pub use deployment::{
    CloudAccess, HostAlias, IdentityDeployment, ImagePullPolicy, MicCredentials, Mode,
    WorkloadKind, WorkloadRef,
};
pub use error::InclusterError;
pub use exec::{ExecOutput, exec};
pub use logs::{LogsReport, collect_logs};
pub use manifests::{Manifest, RenderedDeployment, render, render_from_module, verify_module};
pub use object::ObjectKey;
pub use rollout::{Rollout, RolloutOptions, restart, wait_rolled_out};
pub use workload::{
    Placement, RunningWorkload, WorkloadOwner, WorkloadSpec, build_daemon_set, build_pod,
    build_replica_set, create_and_wait_running, delete_and_wait_gone,
};
