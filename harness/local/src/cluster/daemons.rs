//! NMI (one per node) and MIC (in one node) as processes: spawn, readiness (`/healthz` Active and
//! their own API watches open), stop and restart.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use podid_wait::{Check, Poll, until};

use super::nodes::free_port_in;
use super::{LocalCluster, LocalNode, Running};
use crate::LocalError;
use crate::config::{MicConfig, NmiMode};
use crate::iptables::{nmi_rules, remove_nmi_chain};
use crate::mic::{MicFlags, mic_args};
use crate::nmi::{NmiNodeFlags, nmi_args};
use crate::probe::get_in_namespace;
use crate::process::{ChildProcess, log_tail};
use crate::teardown::Role;
use crate::watchers::{WatchState, wait_for_watches};

const NMI_READY_TIMEOUT: Duration = Duration::from_secs(30);
const MIC_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long watches may take to open after `/healthz` says Active, or to close after a stop.
const WATCHES_TIMEOUT: Duration = Duration::from_secs(30);
/// How long NMI gets after SIGTERM to remove its iptables before it is killed (it then sleeps
/// 10 s before exiting, which is not waited out).
const NMI_CLEANUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What stopping NMI on one node showed: upstream NMI deletes its PREROUTING jump and its
/// `aad-metadata` chain on SIGTERM, and a suite must notice when it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmiStop {
    /// The node NMI ran on.
    pub node: String,
    /// Whether NMI removed both the jump and the chain itself before it was killed (if not,
    /// the harness removed them).
    pub removed_own_chain: bool,
}

impl LocalCluster {
    /// Starts NMI on every node in `mode` (configured flags, then `extra_args`) and waits until
    /// each `/healthz` answers `Active` and NMI's own watches are open; on failure the error
    /// carries the end of NMI's log, or the watch counts seen.
    pub async fn start_nmi(&self, mode: NmiMode, extra_args: &[String]) -> Result<(), LocalError> {
        let mut running = self.running.lock().await;
        self.start_nmi_locked(&mut running, mode, extra_args).await
    }

    /// Stops NMI everywhere (letting it remove its iptables chain, without its 10 s exit sleep)
    /// and starts it again in `mode` with `extra_args`; returns how each stop went.
    pub async fn restart_nmi(
        &self,
        mode: NmiMode,
        extra_args: &[String],
    ) -> Result<Vec<NmiStop>, LocalError> {
        let mut running = self.running.lock().await;
        let stops = self.stop_nmi_locked(&mut running).await?;
        self.start_nmi_locked(&mut running, mode, extra_args)
            .await?;
        Ok(stops)
    }

    /// Stops NMI on every node it runs on (as in [`LocalCluster::restart_nmi`]) and waits until
    /// its watches are closed; empty when NMI does not run.
    pub async fn stop_nmi(&self) -> Result<Vec<NmiStop>, LocalError> {
        let mut running = self.running.lock().await;
        self.stop_nmi_locked(&mut running).await
    }

    /// Whether MIC runs (was started and has not been stopped).
    pub async fn mic_running(&self) -> bool {
        self.running.lock().await.registry.is_running(&Role::Mic)
    }

    /// MIC's log file (appended across restarts).
    pub fn mic_log(&self) -> PathBuf {
        self.config.work_dir.join("logs").join("mic.log")
    }

    /// Starts MIC inside `config.node`'s namespace (like a hostNetwork pod: that node's hosts
    /// file, API forwarder and cloud addresses apply) and waits until its `/healthz` answers
    /// `Active` (leader, caches synced) and its own watches are open. MIC uses the admin
    /// kubeconfig and `MIC_POD_NAMESPACE=default`.
    pub async fn start_mic(&self, config: &MicConfig) -> Result<(), LocalError> {
        let program =
            self.config
                .binaries
                .mic
                .clone()
                .ok_or_else(|| LocalError::MissingProgram {
                    program: "mic".into(),
                    hint: "no MIC binary was configured (Binaries::mic)".into(),
                })?;
        let node = self.known_node(&config.node)?;
        let mut running = self.running.lock().await;
        if running.registry.is_running(&Role::Mic) {
            return Err(LocalError::Config("MIC already runs".into()));
        }
        let probe_port = free_port_in(&node.netns)?;
        let metrics_port = free_port_in(&node.netns)?;
        let args = mic_args(
            &MicFlags {
                kubeconfig: &self.kubeconfig,
                cloud_config: &config.cloud_config,
                instance: &config.instance,
                probe_port,
                metrics_port,
            },
            &config.extra_args,
        );
        let log = self.mic_log();
        append(
            &log,
            &format!(
                "=== podid: starting MIC in node {} {} ===\n",
                node.name,
                args.join(" ")
            ),
        )?;
        let mut cmd = node.netns.exec_command(&program);
        cmd.args(&args)
            .env("MIC_POD_NAMESPACE", "default")
            .env_remove("KUBECONFIG")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("AZURE_ENVIRONMENT_FILEPATH");
        for (key, value) in &config.extra_env {
            cmd.env(key, value);
        }
        let process = running.registry.spawn(Role::Mic, cmd, &log)?;
        let mut ready = wait_active("MIC", node, probe_port, process, MIC_READY_TIMEOUT).await;
        if ready.is_ok() {
            let targets = running.watchers(self.nodes.len()).mic_targets();
            ready = wait_for_watches(
                &self.client,
                "MIC",
                &targets,
                WatchState::Open,
                WATCHES_TIMEOUT,
            )
            .await;
        }
        if ready.is_err() {
            if let Err(e) = self.kill_mic(&mut running).await {
                tracing::warn!("stopping MIC after it failed to start: {e}");
            }
        }
        ready
    }

    /// Stops MIC (SIGKILL: it keeps no local state; its leader lease is re-acquired at once by
    /// the next MIC of this run, which uses the same instance name) and waits until its watches
    /// are closed. No-op when it does not run.
    pub async fn stop_mic(&self) -> Result<(), LocalError> {
        let mut running = self.running.lock().await;
        self.kill_mic(&mut running).await
    }

    async fn kill_mic(&self, running: &mut Running) -> Result<(), LocalError> {
        let Some(process) = running.registry.process_mut(&Role::Mic) else {
            return Ok(());
        };
        process.kill().await;
        let pid = process.pid();
        running.registry.forget_process(&Role::Mic)?;
        tracing::debug!(pid, "MIC stopped");
        // Until they close, MIC's watches would pass for a next NMI's.
        let targets = running.watchers(self.nodes.len()).mic_targets();
        wait_for_watches(
            &self.client,
            "the stopped MIC",
            &targets,
            WatchState::Closed,
            WATCHES_TIMEOUT,
        )
        .await
    }

    async fn start_nmi_locked(
        &self,
        running: &mut Running,
        mode: NmiMode,
        extra_args: &[String],
    ) -> Result<(), LocalError> {
        if let Some(node) = self
            .nodes
            .iter()
            .find(|n| running.registry.is_running(&Role::nmi(&n.name)))
        {
            return Err(LocalError::Config(format!(
                "NMI already runs on node {}",
                node.name
            )));
        }
        running.nmi_mode = Some(mode);
        for node in &self.nodes {
            let cmd = self.nmi_command(node, mode, extra_args)?;
            running
                .registry
                .spawn(Role::nmi(&node.name), cmd, &node.nmi_log)?;
        }
        for node in &self.nodes {
            let process = running
                .registry
                .process_mut(&Role::nmi(&node.name))
                .expect("just spawned");
            let component = format!("NMI on node {}", node.name);
            wait_active(
                &component,
                node,
                node.probe_port,
                process,
                NMI_READY_TIMEOUT,
            )
            .await?;
        }
        // Healthy means caches filled, not watches open: wait for the watches too, so objects a
        // scenario creates next are not missed (managed-mode NMI does not retry).
        let targets = running.watchers(self.nodes.len()).nmi_targets(mode);
        wait_for_watches(
            &self.client,
            "NMI",
            &targets,
            WatchState::Open,
            WATCHES_TIMEOUT,
        )
        .await
    }

    async fn stop_nmi_locked(&self, running: &mut Running) -> Result<Vec<NmiStop>, LocalError> {
        let mut stops = Vec::new();
        for node in &self.nodes {
            let role = Role::nmi(&node.name);
            let Some(process) = running.registry.process_mut(&role) else {
                continue;
            };
            stops.push(stop_nmi_on(node, process).await);
            running.registry.forget_process(&role)?;
        }
        if let Some(mode) = running.nmi_mode.take() {
            // Until they close, the old NMIs' watches would pass for the next ones'.
            let targets = running.watchers(self.nodes.len()).nmi_targets(mode);
            wait_for_watches(
                &self.client,
                "the stopped NMI",
                &targets,
                WatchState::Closed,
                WATCHES_TIMEOUT,
            )
            .await?;
        }
        Ok(stops)
    }

    /// NMI's command on `node`, after appending a start header to its log.
    fn nmi_command(
        &self,
        node: &LocalNode,
        mode: NmiMode,
        extra_args: &[String],
    ) -> Result<tokio::process::Command, LocalError> {
        let flags = NmiNodeFlags {
            node: &node.name,
            kubelet_config: &node.kubelet_config,
            probe_port: node.probe_port,
            metrics_port: node.metrics_port,
        };
        let args = nmi_args(&flags, mode, &self.config.nmi, extra_args);
        let header = format!("=== podid: starting NMI {} ===\n", args.join(" "));
        append(&node.nmi_log, &header)?;
        let mut cmd = node.netns.exec_command(&self.config.binaries.nmi);
        cmd.args(&args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("MSI_ENDPOINT")
            .env_remove("MSI_SECRET");
        for (key, value) in &self.config.nmi.extra_env {
            cmd.env(key, value);
        }
        Ok(cmd)
    }
}

/// Polls `/healthz` on `port` inside the node until it answers `Active` (NMI and MIC alike).
async fn wait_active(
    component: &str,
    node: &LocalNode,
    port: u16,
    process: &mut ChildProcess,
    timeout: Duration,
) -> Result<(), LocalError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let netns = &node.netns;
    let poll = Poll::every(Duration::from_millis(100), timeout);
    let answered = until(poll, || {
        let exited = process.exited();
        async move {
            if let Some(status) = exited {
                return Check::Failed(format!("exited with {status}"));
            }
            match get_in_namespace(netns, addr, "/healthz", Duration::from_secs(2)).await {
                Ok((200, body)) if body.trim() == "Active" => Check::Done(()),
                Ok((status, body)) => {
                    Check::Pending(format!("/healthz answered {status} {body:?}"))
                }
                Err(e) => Check::Pending(e),
            }
        }
    })
    .await;
    answered.map_err(|e| LocalError::NotReady {
        component: component.to_string(),
        waited_secs: e.waited().as_secs(),
        reason: e.into_state(),
        log: process.log().to_path_buf(),
        log_tail: log_tail(process.log(), 30),
    })
}

/// SIGTERM, wait for NMI to remove its PREROUTING jump and its chain, then SIGKILL instead of
/// waiting out its 10 s exit sleep; if it never cleans up, remove them ourselves and say so.
async fn stop_nmi_on(node: &LocalNode, process: &mut ChildProcess) -> NmiStop {
    process.signal(nix::sys::signal::Signal::SIGTERM);
    let poll = Poll::every(Duration::from_millis(50), NMI_CLEANUP_TIMEOUT);
    let netns = &node.netns;
    let cleaned = until(poll, move || async move {
        match nmi_rules(netns).await {
            Ok(rules) if rules.gone() => Check::Done(()),
            Ok(rules) => Check::Pending(rules.to_string()),
            Err(e) => Check::Pending(e),
        }
    })
    .await;
    process.kill().await;
    if let Err(e) = &cleaned {
        tracing::warn!(node = %node.name, "NMI did not remove its iptables rules ({e}); removing them");
        remove_nmi_chain(&node.netns).await;
    }
    tracing::debug!(node = %node.name, cleaned_by_nmi = cleaned.is_ok(), "NMI stopped");
    NmiStop {
        node: node.name.clone(),
        removed_own_chain: cleaned.is_ok(),
    }
}

fn append(path: &Path, text: &str) -> Result<(), LocalError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| LocalError::io(format!("creating {}", dir.display()), e))?;
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| LocalError::io(format!("writing {}", path.display()), e))
}
