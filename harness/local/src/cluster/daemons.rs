//! NMI as one process per node: spawn, readiness (`/healthz` Active and its own API watches
//! open), stop (SIGTERM, letting it remove its iptables chain) or kill (SIGKILL, leaving it), on
//! every node or some; and what starting and stopping any of the cluster's processes shares.

use std::fs;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use podid_wait::{Check, Poll, until};

use super::health::{HealthReading, Wanted, read_healthz, wait_healthz};
use super::{LocalCluster, LocalNode, NmiRun, Running};
use crate::LocalError;
use crate::config::NmiMode;
use crate::iptables::{NmiRules, nmi_rules, remove_nmi_chain};
use crate::nmi::{NmiNodeFlags, nmi_args};
use crate::process::ChildProcess;
use crate::teardown::Role;
use crate::watchers::{WatchState, Watchers, wait_for_watches};

const NMI_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long watches may take to open after `/healthz` says Active, or to close after a stop.
pub(super) const WATCHES_TIMEOUT: Duration = Duration::from_secs(30);
/// How long NMI gets after SIGTERM to remove its iptables before it is killed (it then sleeps
/// 10 s before exiting, which is not waited out).
const NMI_CLEANUP_TIMEOUT: Duration = Duration::from_secs(3);

/// How a process is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: the process shuts down its own way (NMI removes its iptables chain).
    Term,
    /// SIGKILL: nothing of its own shutdown runs (NMI leaves its chain behind).
    Kill,
}

/// What stopping NMI on one node showed: upstream NMI deletes its PREROUTING jump and its
/// `aad-metadata` chain on SIGTERM, and a suite must notice when it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmiStop {
    /// The node NMI ran on.
    pub node: String,
    /// Whether NMI removed both the jump and the chain itself before it was killed.
    pub removed_own_chain: bool,
}

/// Whether the harness removes a chain NMI left behind after a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftovers {
    /// Between configurations: the next NMI must start from a clean table.
    Remove,
    /// A scenario's own stop or kill: what NMI left is what the scenario checks.
    Keep,
}

impl LocalCluster {
    /// Starts NMI on every node in `mode` (configured flags, then `extra_args`) and waits until
    /// each `/healthz` answers `Active` and NMI's own watches are open; on failure the error
    /// carries the end of NMI's log, or the watch counts seen.
    pub async fn start_nmi(&self, mode: NmiMode, extra_args: &[String]) -> Result<(), LocalError> {
        let mut running = self.running.lock().await;
        self.start_nmi_locked(&mut running, mode, extra_args).await
    }

    /// Stops NMI everywhere (letting it remove its iptables chain, without its 10 s exit sleep;
    /// a chain it leaves is removed) and starts it again in `mode` with `extra_args`; returns how
    /// each stop went.
    pub async fn restart_nmi(
        &self,
        mode: NmiMode,
        extra_args: &[String],
    ) -> Result<Vec<NmiStop>, LocalError> {
        let mut running = self.running.lock().await;
        let all = self.node_names();
        let stops = self
            .stop_nmi_locked(&mut running, &all, StopSignal::Term, Leftovers::Remove)
            .await?;
        self.start_nmi_locked(&mut running, mode, extra_args)
            .await?;
        Ok(stops)
    }

    /// Stops NMI on every node it runs on (as in [`LocalCluster::restart_nmi`]) and waits until
    /// its watches are closed; empty when NMI does not run.
    pub async fn stop_nmi(&self) -> Result<Vec<NmiStop>, LocalError> {
        let mut running = self.running.lock().await;
        let all = self.node_names();
        self.stop_nmi_locked(&mut running, &all, StopSignal::Term, Leftovers::Remove)
            .await
    }

    /// Stops NMI on `nodes` (where it is up) with `signal` and waits until their watches are
    /// closed. A chain NMI leaves behind stays (after SIGKILL it always does), as on a real node.
    pub async fn stop_nmi_on(
        &self,
        nodes: &[String],
        signal: StopSignal,
    ) -> Result<Vec<NmiStop>, LocalError> {
        for node in nodes {
            self.known_node(node)?;
        }
        let mut running = self.running.lock().await;
        self.stop_nmi_locked(&mut running, nodes, signal, Leftovers::Keep)
            .await
    }

    /// Starts NMI, with the mode and flags of its last start, on those of `nodes` where it is
    /// down, and waits until each is Active with its watches open; returns the nodes started.
    pub async fn start_nmi_on(&self, nodes: &[String]) -> Result<Vec<String>, LocalError> {
        for node in nodes {
            self.known_node(node)?;
        }
        let mut running = self.running.lock().await;
        let down: Vec<String> = nodes
            .iter()
            .filter(|n| !running.registry.is_up(&Role::nmi(n)))
            .cloned()
            .collect();
        if down.is_empty() {
            return Ok(down);
        }
        let run = running
            .nmi
            .clone()
            .ok_or_else(|| LocalError::Config("NMI has never been started".into()))?;
        running.require_apiserver("start NMI")?;
        self.spawn_nmi(&mut running, &run, &down).await?;
        Ok(down)
    }

    /// The nodes where NMI has been started and is not up now (stopped, killed or exited).
    pub async fn nmi_down_nodes(&self) -> Vec<String> {
        let mut running = self.running.lock().await;
        if running.nmi.is_none() {
            return Vec::new();
        }
        self.node_names()
            .into_iter()
            .filter(|n| !running.registry.is_up(&Role::nmi(n)))
            .collect()
    }

    /// NMI's `/healthz` on `node`.
    pub async fn nmi_health(&self, node: &str) -> Result<HealthReading, LocalError> {
        let local = self.known_node(node)?;
        let up = self.running.lock().await.registry.is_up(&Role::nmi(node));
        let answer = if up {
            read_healthz(&local.netns, local.probe_port).await
        } else {
            Err("NMI is not running".into())
        };
        Ok(HealthReading {
            instance: format!("nmi@{node}"),
            answer,
        })
    }

    /// NMI's PREROUTING jump and `aad-metadata` chain in `node`'s nat table.
    pub async fn nmi_rules(&self, node: &str) -> Result<NmiRules, LocalError> {
        let local = self.known_node(node)?;
        nmi_rules(&local.netns).await.map_err(|e| {
            LocalError::io(
                format!("reading NMI's rules on node {node}"),
                std::io::Error::other(e),
            )
        })
    }

    fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
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
            .find(|n| running.registry.is_up(&Role::nmi(&n.name)))
        {
            return Err(LocalError::Config(format!(
                "NMI already runs on node {}",
                node.name
            )));
        }
        running.require_apiserver("start NMI")?;
        let run = NmiRun {
            mode,
            extra_args: extra_args.to_vec(),
        };
        running.nmi = Some(run.clone());
        let all = self.node_names();
        self.spawn_nmi(running, &run, &all).await
    }

    /// Spawns NMI on `nodes` (all down), waits until each is Active, then until their watches
    /// are open on top of everyone else's.
    async fn spawn_nmi(
        &self,
        running: &mut Running,
        run: &NmiRun,
        nodes: &[String],
    ) -> Result<(), LocalError> {
        if nodes.is_empty() {
            return Ok(());
        }
        // Counted before any of them starts: what the others hold.
        let others = self.watchers(running).await;
        for name in nodes {
            let node = self.known_node(name)?;
            let role = Role::nmi(name);
            // One that exited on its own is still registered.
            running.registry.forget_process(&role)?;
            let cmd = self.nmi_command(node, run.mode, &run.extra_args)?;
            running.registry.spawn(role, cmd, &node.nmi_log)?;
        }
        for name in nodes {
            let node = self.known_node(name)?;
            let process = running
                .registry
                .process_mut(&Role::nmi(name))
                .expect("just spawned");
            let component = format!("NMI on node {name}");
            wait_healthz(
                &component,
                &node.netns,
                node.probe_port,
                process,
                Wanted::Active,
                NMI_READY_TIMEOUT,
            )
            .await?;
        }
        // Healthy means caches filled, not watches open: wait for the watches too, so objects a
        // scenario creates next are not missed (managed-mode NMI does not retry).
        let targets = others.nmi_targets(run.mode, nodes.len() as u64);
        wait_for_watches(
            &self.client,
            "NMI",
            &targets,
            WatchState::Open,
            WATCHES_TIMEOUT,
        )
        .await
    }

    async fn stop_nmi_locked(
        &self,
        running: &mut Running,
        nodes: &[String],
        signal: StopSignal,
        leftovers: Leftovers,
    ) -> Result<Vec<NmiStop>, LocalError> {
        let mut stops = Vec::new();
        for name in nodes {
            let node = self.known_node(name)?;
            let role = Role::nmi(name);
            let up = running.registry.is_up(&role);
            let Some(process) = running.registry.process_mut(&role) else {
                continue;
            };
            if up {
                stops.push(stop_nmi_process(node, process, signal, leftovers).await);
            }
            running.registry.forget_process(&role)?;
        }
        if let Some(run) = &running.nmi
            && !stops.is_empty()
            && running.registry.is_up(&Role::ApiServer)
        {
            // Until they close, the stopped NMIs' watches would pass for the next ones'.
            let mode = run.mode;
            let others = self.watchers(running).await;
            let targets = others.nmi_targets(mode, stops.len() as u64);
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

    /// Who watches now: NMIs up in their mode, and whether a MIC replica leads.
    pub(super) async fn watchers(&self, running: &mut Running) -> Watchers {
        Watchers {
            nmi: running.nmi.as_ref().map(|r| r.mode),
            nmis: running.nmis_up(&self.nodes),
            mic: self.mic_leads(running).await,
        }
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
        append_log(&node.nmi_log, &header)?;
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

/// Stops one NMI. SIGTERM: wait for NMI to remove its PREROUTING jump and its chain, then SIGKILL
/// instead of waiting out its 10 s exit sleep; if it never cleans up, say so (and remove them
/// when asked). SIGKILL: at once, the rules stay.
async fn stop_nmi_process(
    node: &LocalNode,
    process: &mut ChildProcess,
    signal: StopSignal,
    leftovers: Leftovers,
) -> NmiStop {
    let cleaned = match signal {
        StopSignal::Kill => false,
        StopSignal::Term => {
            process.signal(Signal::SIGTERM);
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
            if let Err(e) = &cleaned {
                tracing::warn!(node = %node.name, "NMI did not remove its iptables rules ({e})");
            }
            cleaned.is_ok()
        }
    };
    process.kill().await;
    if !cleaned && signal == StopSignal::Term && leftovers == Leftovers::Remove {
        remove_nmi_chain(&node.netns).await;
    }
    tracing::debug!(node = %node.name, ?signal, cleaned_by_nmi = cleaned, "NMI stopped");
    NmiStop {
        node: node.name.clone(),
        removed_own_chain: cleaned,
    }
}

/// Stops a process with `signal`; after SIGTERM it gets `grace` to exit before SIGKILL.
pub(super) async fn stop_process(process: &mut ChildProcess, signal: StopSignal, grace: Duration) {
    if signal == StopSignal::Term {
        process.signal(Signal::SIGTERM);
        let exited = until(Poll::every(Duration::from_millis(50), grace), || {
            let exited = process.exited();
            async move {
                match exited {
                    Some(_) => Check::Done(()),
                    None => Check::Pending("still running".to_string()),
                }
            }
        })
        .await;
        if exited.is_err() {
            tracing::warn!(
                name = process.name(),
                "did not exit within {grace:?} of SIGTERM; killing it"
            );
        }
    }
    process.kill().await;
}

/// Appends `text` to a log file (creating it and its directory).
pub(super) fn append_log(path: &Path, text: &str) -> Result<(), LocalError> {
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
