//! Preparing a local run: prerequisites, leftovers of killed runs, the toolchain, then the
//! local provider.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use podid_toolchain::{BuildObserver, ToolchainConfig};

use crate::provider::ProbeCommand;
use crate::provider::local::LocalProviderConfig;
use crate::runner::Environment;

/// Environment variable that turns the end-to-end trials into ignored ones on machines that
/// cannot run them (no root, no network namespaces). Never set it in CI.
pub const SKIP_E2E_VAR: &str = "PODID_SKIP_E2E";

/// Why a run could not start; the message says what is missing and how to provide it.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Prerequisite(String),
    #[error("building the toolchain: {0}")]
    Toolchain(#[from] podid_toolchain::ToolchainError),
    /// Shown with its causes: "starting the local cluster" alone would not say why.
    #[error("{}", crate::provider::error_chain(.0))]
    Provider(#[from] crate::provider::ProviderError),
}

/// Checks what the local provider needs from the machine; installs missing system packages
/// when it may (root on Debian/Ubuntu).
pub fn check_local_prerequisites(observer: &dyn BuildObserver) -> Result<(), SessionError> {
    if !cfg!(target_os = "linux") {
        return Err(SessionError::Prerequisite(
            "the local provider needs Linux (network namespaces)".into(),
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(SessionError::Prerequisite(format!(
            "the local provider needs root (it creates network namespaces and runs NMI, which programs iptables); run as root, or set {SKIP_E2E_VAR}=1 to mark the end-to-end trials ignored on this machine"
        )));
    }
    podid_toolchain::ensure_system_packages(observer).map_err(SessionError::Toolchain)?;
    let probe = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map_err(|e| SessionError::Prerequisite(format!("cannot run `ip netns list`: {e}")))?;
    if !probe.status.success() {
        return Err(SessionError::Prerequisite(format!(
            "network namespaces are not usable here (`ip netns list` failed: {})",
            String::from_utf8_lossy(&probe.stderr).trim()
        )));
    }
    Ok(())
}

/// Figures from starting a session, for notes and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct StartupFigures {
    pub toolchain: Duration,
    pub provider: Duration,
    pub cluster: Option<podid_local::StartupTimings>,
    pub kind: Option<crate::provider::kind::KindTimings>,
    pub existing: Option<crate::provider::existing::ExistingTimings>,
}

/// Options of a session, whatever the provider.
pub struct SessionOptions {
    /// Root of generated output (`target/podid`).
    pub output_dir: PathBuf,
    /// How to run the probe inside pods.
    pub probe: ProbeCommand,
    pub toolchain: ToolchainConfig,
    /// Only read by the kind provider.
    pub kind: crate::provider::kind::KindOptions,
    /// Only read by the existing provider.
    pub existing: crate::provider::existing::ExistingOptions,
}

/// Brings up the local provider: prerequisites, leftovers, toolchain, cluster, mock cloud.
pub async fn start_local(
    options: SessionOptions,
    observer: &(dyn BuildObserver + Send + Sync),
) -> Result<(Environment, StartupFigures), SessionError> {
    check_local_prerequisites(observer)?;
    match podid_local::clean_leftovers() {
        Ok(report) => tracing::info!(?report, "removed leftovers of earlier runs"),
        Err(e) => tracing::warn!("could not clean leftovers of earlier runs: {e}"),
    }
    if !options.probe.program.is_file() {
        return Err(SessionError::Prerequisite(format!(
            "the probe program {} is missing; build it with `cargo build -p podid --bins`",
            options.probe.program.display()
        )));
    }
    let started = Instant::now();
    // Called directly, blocking this worker: `block_in_place` would turn this thread into a
    // blocking-pool thread, which exits after 10 s idle, and etcd, spawned next from this task
    // (possibly still on this thread), dies with the thread that spawned it (PR_SET_PDEATHSIG).
    let toolchain = podid_toolchain::ensure(&options.toolchain, observer)?;
    let toolchain_time = started.elapsed();
    let run_id = podid_local::generate_run_id();
    let run_dir = options.output_dir.join("runs").join(&run_id);
    let started = Instant::now();
    let (provider, timings) = crate::provider::local::start(LocalProviderConfig {
        run_id: run_id.clone(),
        work_dir: run_dir.clone(),
        toolchain,
        probe: options.probe,
        clients: crate::clients::ClientPrograms::locate(),
    })
    .await?;
    let figures = StartupFigures {
        toolchain: toolchain_time,
        provider: started.elapsed(),
        cluster: Some(timings),
        kind: None,
        existing: None,
    };
    Ok((
        Environment::new(provider, run_id, run_dir.join("artifacts")),
        figures,
    ))
}

/// Brings up the kind provider: Docker, toolchain (with the node image's inputs unless a node
/// image is given), images, cluster, mock cloud.
pub async fn start_kind(
    options: SessionOptions,
    observer: &(dyn BuildObserver + Send + Sync),
) -> Result<(Environment, StartupFigures), SessionError> {
    use crate::provider::kind::{KindProgress, KindProviderConfig, NodeImageSource};
    if !nix::unistd::geteuid().is_root() {
        return Err(SessionError::Prerequisite(
            "the kind provider needs root (it adds the mock cloud's addresses to the cluster network's bridge)".into(),
        ));
    }
    if !options.probe.program.is_file() {
        return Err(SessionError::Prerequisite(format!(
            "the probe program {} is missing; build it with `cargo build -p podid --bins`",
            options.probe.program.display()
        )));
    }
    let started = Instant::now();
    let toolchain = podid_toolchain::ensure(&options.toolchain, observer)?;
    let kind_toolchain = podid_toolchain::ensure_kind(&options.toolchain, observer)?;
    let toolchain_time = started.elapsed();
    let node_image = match &options.kind.node_image {
        Some(tag) => NodeImageSource::Given(tag.clone()),
        None => NodeImageSource::Build(Box::new(podid_kind::NodeImageInputs {
            kubernetes_version: kind_toolchain.versions.kubernetes.clone(),
            kubeadm: kind_toolchain.kubeadm.clone(),
            kubelet: kind_toolchain.kubelet.clone(),
            kubectl: kind_toolchain.kubectl.clone(),
            kube_proxy: kind_toolchain.kube_proxy.clone(),
            kube_scheduler: kind_toolchain.kube_scheduler.clone(),
            kube_controller_manager: kind_toolchain.kube_controller_manager.clone(),
            kube_apiserver: toolchain.kube_apiserver.clone(),
            etcd: toolchain.etcd.clone(),
            coredns: kind_toolchain.coredns.clone(),
            crictl: None,
            kind_module_dir: kind_toolchain.kind_module_dir.clone(),
            pause: podid_kind::PauseInput::Source(kind_toolchain.pause_source.clone()),
        })),
    };
    let run_id = podid_local::generate_run_id();
    let run_dir = options.output_dir.join("runs").join(&run_id);
    let tc = &toolchain.versions;
    let versions = vec![
        ("nmi".to_string(), tc.nmi.clone()),
        ("mic".to_string(), tc.mic.clone()),
        (
            "kubernetes".to_string(),
            kind_toolchain.versions.kubernetes.clone(),
        ),
        ("kind".to_string(), kind_toolchain.versions.kind.clone()),
    ];
    let started = Instant::now();
    let (provider, timings) = crate::provider::kind::start(
        KindProviderConfig {
            run_id: run_id.clone(),
            work_dir: run_dir.clone(),
            cache_dir: options.toolchain.cache_dir.join("kind"),
            node_image,
            kind_binary: kind_toolchain.kind.clone(),
            nmi_binary: toolchain.nmi.clone(),
            mic_binary: toolchain.mic.clone(),
            aad_pod_identity_module: kind_toolchain.aad_pod_identity_module_dir.clone(),
            crds: toolchain.crds.clone(),
            versions,
            probe: options.probe,
            options: options.kind,
        },
        &KindProgress,
    )
    .await?;
    tracing::info!(?timings, "kind provider ready");
    let figures = StartupFigures {
        toolchain: toolchain_time,
        provider: started.elapsed(),
        cluster: None,
        kind: Some(timings),
        existing: None,
    };
    Ok((
        Environment::new(provider, run_id, run_dir.join("artifacts")),
        figures,
    ))
}

/// Brings up the existing provider: the cluster of the kubeconfig (checked in seconds), the
/// pinned upstream manifests (read from the toolchain's module cache, for installing), the
/// cloud side.
pub async fn start_existing(
    options: SessionOptions,
    observer: &(dyn BuildObserver + Send + Sync),
) -> Result<(Environment, StartupFigures), SessionError> {
    use crate::provider::existing::ExistingProviderConfig;
    let connected = crate::provider::existing::connect(&options.existing).await?;
    let started = Instant::now();
    // Only the pinned module (manifests, CRDs) is needed: a cached toolchain answers at once.
    let toolchain = podid_toolchain::ensure(&options.toolchain, observer)?;
    let module_dir = options.toolchain.aad_pod_identity_module_dir();
    let toolchain_time = started.elapsed();
    let run_id = podid_local::generate_run_id();
    let run_dir = options.output_dir.join("runs").join(&run_id);
    let started = Instant::now();
    let (provider, timings) = crate::provider::existing::start(ExistingProviderConfig {
        run_id: run_id.clone(),
        connected,
        options: options.existing,
        aad_pod_identity_module: module_dir,
        crds: toolchain.crds.clone(),
    })
    .await?;
    let figures = StartupFigures {
        toolchain: toolchain_time,
        provider: started.elapsed(),
        cluster: None,
        kind: None,
        existing: Some(timings),
    };
    Ok((
        Environment::new(provider, run_id, run_dir.join("artifacts")),
        figures,
    ))
}

/// Removes what this process started (local runs' processes and namespaces, kind clusters and
/// their networks), for an interrupt that arrives before or while a provider runs.
pub async fn clean_own_runs() -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = podid_local::clean_own_runs() {
        errors.push(format!("local: {e}"));
    }
    if let Ok(docker) = podid_kind::Docker::connect().await {
        let scope = podid_kind::CleanScope::OwnedBy(std::process::id());
        if let Err(e) = podid_kind::clean_leftovers(&docker, None, scope).await {
            errors.push(format!("kind: {e}"));
        }
    }
    errors
}

/// `target/podid` under the given workspace root.
pub fn default_output_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("podid")
}
