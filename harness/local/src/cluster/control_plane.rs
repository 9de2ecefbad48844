//! The control plane: etcd, kube-apiserver (with its PKI and the admin kubeconfig) and the
//! aad-pod-identity CRDs, started in that order and each waited for.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use podid_netns::child_dies_with_parent;

use super::StartupTimings;
use crate::LocalError;
use crate::apiserver::{ApiServerFlags, apiserver_args, wait_apiserver_ready};
use crate::config::LocalClusterConfig;
use crate::crds::install_crds;
use crate::etcd::{etcd_args, wait_etcd_healthy};
use crate::kubeconfig::render_kubeconfig;
use crate::pki::ClusterPki;
use crate::ports::free_loopback_ports;
use crate::teardown::{Role, RunRegistry};

const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(60);
const CRD_TIMEOUT: Duration = Duration::from_secs(30);

/// A ready control plane.
pub(super) struct ControlPlane {
    /// Admin client.
    pub client: kube::Client,
    /// The admin kubeconfig file.
    pub kubeconfig: PathBuf,
    /// kube-apiserver's secure port on 127.0.0.1 (forwarded into each node).
    pub api_port: u16,
    /// etcd, kube-apiserver and CRD timings (nodes are not started yet).
    pub timings: StartupTimings,
}

/// Starts etcd and kube-apiserver (registered in `registry` as they start) and installs the
/// CRDs, waiting for each.
pub(super) async fn start(
    config: &LocalClusterConfig,
    registry: &mut RunRegistry,
) -> Result<ControlPlane, LocalError> {
    let work = &config.work_dir;
    let logs = work.join("logs");
    let mut timings = StartupTimings::default();

    let ports = free_loopback_ports(3)?;
    let (etcd_port, peer_port, api_port) = (ports[0], ports[1], ports[2]);

    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&config.binaries.etcd);
    cmd.args(etcd_args(&work.join("etcd"), etcd_port, peer_port));
    child_dies_with_parent(&mut cmd);
    let etcd = registry.spawn(Role::Etcd, cmd, &logs.join("etcd.log"))?;
    wait_etcd_healthy(etcd, etcd_port, ETCD_READY_TIMEOUT).await?;
    timings.etcd_ready = started.elapsed();

    let pki = ClusterPki::generate()?;
    let pki_dir = work.join("pki");
    let pki_files = pki.write(&pki_dir)?;
    let kubeconfig = work.join("admin.kubeconfig");
    let kubeconfig_text = render_kubeconfig(
        &format!("https://127.0.0.1:{api_port}"),
        &pki.ca_cert,
        &pki.admin_cert,
        &pki.admin_key,
    );
    fs::write(&kubeconfig, &kubeconfig_text)
        .map_err(|e| LocalError::io(format!("writing {}", kubeconfig.display()), e))?;
    let client = client_from_kubeconfig(&kubeconfig_text).await?;

    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&config.binaries.kube_apiserver);
    cmd.args(apiserver_args(&ApiServerFlags {
        etcd_port,
        secure_port: api_port,
        pki: &pki_files,
        cert_dir: &pki_dir,
    }));
    child_dies_with_parent(&mut cmd);
    let apiserver = registry.spawn(Role::ApiServer, cmd, &logs.join("kube-apiserver.log"))?;
    wait_apiserver_ready(apiserver, &client, APISERVER_READY_TIMEOUT).await?;
    timings.apiserver_ready = started.elapsed();

    let started = Instant::now();
    install_crds(&client, &config.binaries.crds, CRD_TIMEOUT).await?;
    timings.crds_established = started.elapsed();

    Ok(ControlPlane {
        client,
        kubeconfig,
        api_port,
        timings,
    })
}

async fn client_from_kubeconfig(text: &str) -> Result<kube::Client, LocalError> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(text).map_err(|e| LocalError::Parse {
        what: "the admin kubeconfig".into(),
        message: e.to_string(),
    })?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| LocalError::Parse {
        what: "the admin kubeconfig".into(),
        message: e.to_string(),
    })?;
    kube::Client::try_from(config).map_err(|e| LocalError::kube("building the admin client", e))
}
