//! The control plane: etcd, kube-apiserver (with its PKI and the admin kubeconfig) and the
//! aad-pod-identity CRDs, started in that order and each waited for; kube-apiserver can be
//! stopped and started again with the same flags, certificates and etcd.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use podid_netns::child_dies_with_parent;
use podid_wait::{Check, Poll, until};

use super::daemons::{StopSignal, WATCHES_TIMEOUT, append_log};
use super::{HealthReading, LocalCluster, Running, StartupTimings};
use crate::LocalError;
use crate::apiserver::{ApiServerFlags, apiserver_args, wait_apiserver_ready};
use crate::config::LocalClusterConfig;
use crate::crds::install_crds;
use crate::etcd::{etcd_args, wait_etcd_healthy};
use crate::kubeconfig::render_kubeconfig;
use crate::pki::ClusterPki;
use crate::ports::free_loopback_ports;
use crate::teardown::{Role, RunRegistry};
use crate::watchers::{WatchState, wait_for_watches};

const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(60);
const CRD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long kube-apiserver's own `/healthz` may take to answer.
const APISERVER_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long kube-apiserver may keep listening after SIGTERM before it is killed.
const APISERVER_STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How kube-apiserver was started, to start it again the same way.
#[derive(Debug, Clone)]
pub(super) struct ApiServerLaunch {
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    /// Its secure port on 127.0.0.1.
    port: u16,
}

impl ApiServerLaunch {
    /// Its command (dying with the thread that spawns it, like every child here).
    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args);
        child_dies_with_parent(&mut cmd);
        cmd
    }
}

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
    pub apiserver: ApiServerLaunch,
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
    let launch = ApiServerLaunch {
        program: config.binaries.kube_apiserver.clone(),
        args: apiserver_args(&ApiServerFlags {
            etcd_port,
            secure_port: api_port,
            pki: &pki_files,
            cert_dir: &pki_dir,
        }),
        log: logs.join("kube-apiserver.log"),
        port: api_port,
    };
    let apiserver = registry.spawn(Role::ApiServer, launch.command(), &launch.log)?;
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
        apiserver: launch,
    })
}

impl LocalCluster {
    /// Whether kube-apiserver is up (started and not exited).
    pub async fn apiserver_up(&self) -> bool {
        self.running.lock().await.registry.is_up(&Role::ApiServer)
    }

    /// kube-apiserver's own `/healthz`, asked with the admin client.
    pub async fn apiserver_health(&self) -> HealthReading {
        let instance = "kube-apiserver".to_string();
        if !self.apiserver_up().await {
            return HealthReading {
                instance,
                answer: Err("kube-apiserver is not running".into()),
            };
        }
        let request = http::Request::get("/healthz")
            .body(Vec::new())
            .expect("static request");
        let asked =
            tokio::time::timeout(APISERVER_HEALTH_TIMEOUT, self.client.request_text(request)).await;
        let answer = match asked {
            Ok(Ok(body)) => Ok((200, body)),
            Ok(Err(kube::Error::Api(status))) => Ok((status.code, status.message)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {}s",
                APISERVER_HEALTH_TIMEOUT.as_secs()
            )),
        };
        HealthReading { instance, answer }
    }

    /// Stops kube-apiserver; etcd keeps the data, NMI and MIC keep running and retry. No-op
    /// when it is already down.
    ///
    /// `Term`: SIGTERM, then SIGKILL once it no longer listens. By then its graceful shutdown
    /// has refused new requests and drained the in-flight ones; what would follow is up to a
    /// minute of holding idle watch connections open, answering nothing (its clients would see
    /// a hung server rather than a stopped one). `Kill`: SIGKILL at once.
    pub async fn stop_apiserver(&self, signal: StopSignal) -> Result<(), LocalError> {
        let mut running = self.running.lock().await;
        let port = self.apiserver.port;
        if let Some(process) = running.registry.process_mut(&Role::ApiServer) {
            if signal == StopSignal::Term && process.exited().is_none() {
                process.signal(nix::sys::signal::Signal::SIGTERM);
                let closed = until(
                    Poll::every(Duration::from_millis(20), APISERVER_STOP_TIMEOUT),
                    || {
                        let exited = process.exited().is_some();
                        async move {
                            if exited || !listens(port).await {
                                Check::Done(())
                            } else {
                                Check::Pending(format!("127.0.0.1:{port} still accepts"))
                            }
                        }
                    },
                )
                .await;
                if let Err(e) = closed {
                    tracing::warn!("kube-apiserver kept listening after SIGTERM ({e}); killing it");
                }
            }
            process.kill().await;
            running.registry.forget_process(&Role::ApiServer)?;
        }
        Ok(())
    }

    /// Starts kube-apiserver again with the same flags, certificates and etcd when it is down,
    /// and waits until it serves, a MIC replica leads again (one that exited, having lost its
    /// lease while the API was away, is started again as its kubelet would) and every watch of
    /// NMI and MIC is open again.
    pub async fn start_apiserver(&self) -> Result<(), LocalError> {
        let mut running = self.running.lock().await;
        if running.registry.is_up(&Role::ApiServer) {
            return Ok(());
        }
        running.registry.forget_process(&Role::ApiServer)?;
        let launch = &self.apiserver;
        append_log(
            &launch.log,
            "=== podid: starting kube-apiserver again ===\n",
        )?;
        let process = running
            .registry
            .spawn(Role::ApiServer, launch.command(), &launch.log)?;
        wait_apiserver_ready(process, &self.client, APISERVER_READY_TIMEOUT).await?;
        self.restart_exited_mic(&mut running).await?;
        let watchers = self.watchers(&mut running).await;
        wait_for_watches(
            &self.client,
            "NMI and MIC (after kube-apiserver restarted)",
            &watchers.all_targets(),
            WatchState::Open,
            WATCHES_TIMEOUT,
        )
        .await
    }

    /// Waits until a MIC replica leads again; replicas that exited meanwhile (a leader that
    /// could not renew its lease while the API was away exits) are started again, as their
    /// kubelet would.
    async fn restart_exited_mic(&self, running: &mut Running) -> Result<(), LocalError> {
        let mut last = Ok(());
        for _ in 0..3 {
            let exited = self.exited_mic_slots(running);
            if !exited.is_empty() {
                tracing::warn!(
                    ?exited,
                    "MIC replicas exited while kube-apiserver was down; starting them again"
                );
                last = self.start_mic_slots(running, &exited).await;
                continue;
            }
            last = self.wait_mic_leads(running).await;
            if self.exited_mic_slots(running).is_empty() {
                return last;
            }
        }
        last
    }
}

/// Whether something accepts connections on 127.0.0.1:`port`.
async fn listens(port: u16) -> bool {
    tokio::net::TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port))
        .await
        .is_ok()
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
