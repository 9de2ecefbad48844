//! MIC as one or two processes competing for upstream's leader lease (an Endpoints lock): each
//! replica runs in its own node's namespace, like a hostNetwork pod, with a fixed instance name
//! per slot. Ready means the started replicas answer `/healthz`, one of them leads (`Active`)
//! and the leader's watches are open; a follower answers `Not Active` and watches nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use podid_netns::NetNamespace;
use podid_wait::{Check, Poll, until};

use super::daemons::{StopSignal, WATCHES_TIMEOUT, append_log, stop_process};
use super::health::{HealthReading, Wanted, is_active, read_healthz, wait_healthz};
use super::nodes::free_port_in;
use super::{LocalCluster, LocalNode, Running};
use crate::LocalError;
use crate::config::MicConfig;
use crate::mic::{LeaderLock, MIC_POD_NAMESPACE, MIC_REPLICATED_LEASE, MicFlags, mic_args};
use crate::teardown::Role;
use crate::watchers::{WatchState, wait_for_watches};

/// How long MIC may take to lead after a start: a new leader may first wait out a dead
/// holder's lease.
const MIC_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// MIC exits at once on SIGTERM (it installs no handler); this only bounds a stuck one.
const MIC_STOP_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(100);

/// Which MIC replicas an operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MicSelector {
    All,
    /// The replica whose instance holds the lease.
    Leader,
    /// Every replica that does not hold it.
    Followers,
}

/// One configured MIC replica as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicReplicaState {
    pub slot: u8,
    /// Its `--leader-election-instance`.
    pub instance: String,
    /// The node whose namespace it runs in.
    pub node: String,
    /// Started and not exited.
    pub up: bool,
    /// Its instance holds the lease (even if it is down and the lease has not expired yet).
    pub leader: bool,
}

/// How MIC is configured and where its replicas listen.
pub(super) struct MicRun {
    config: MicConfig,
    /// The slots meant to run (one stopped by a scenario stays here until started again).
    slots: BTreeSet<u8>,
    /// `/healthz` port of each slot at its last start.
    probe_ports: BTreeMap<u8, u16>,
}

impl LocalCluster {
    /// MIC replica `slot`'s log file (appended across restarts).
    pub fn mic_log(&self, slot: u8) -> PathBuf {
        self.config
            .work_dir
            .join("logs")
            .join(format!("mic-{slot}.log"))
    }

    /// Makes MIC run as `config` says and waits until it is ready (a replica leads, its watches
    /// are open, the others answer). Replicas already running with this very configuration
    /// stay (down ones are started); with another one every replica is replaced, starting with
    /// the slot that holds the lease so it takes its lease back at once.
    pub async fn run_mic(&self, config: &MicConfig) -> Result<(), LocalError> {
        self.validate_mic(config)?;
        let mut running = self.running.lock().await;
        running.require_apiserver("start MIC")?;
        if let Some(run) = &running.mic
            && run.config == *config
        {
            let down = self.down_mic_slots(&mut running, MicSelector::All).await?;
            return self.start_mic_slots(&mut running, &down).await;
        }
        let all = configured_slots(&running);
        self.stop_mic_slots(&mut running, &all, StopSignal::Kill)
            .await?;
        let holder = self.lease_holder(&config.extra_args).await.ok().flatten();
        let slots = choose_slots(config, holder.as_deref());
        running.mic = Some(MicRun {
            config: config.clone(),
            slots: slots.iter().copied().collect(),
            probe_ports: BTreeMap::new(),
        });
        self.start_mic_slots(&mut running, &slots).await
    }

    /// Stops every MIC replica (SIGKILL: MIC keeps no local state) and forgets its
    /// configuration; waits until its watches are closed. No-op when MIC does not run.
    pub async fn stop_mic(&self) -> Result<(), LocalError> {
        let mut running = self.running.lock().await;
        let all = configured_slots(&running);
        self.stop_mic_slots(&mut running, &all, StopSignal::Kill)
            .await?;
        running.mic = None;
        Ok(())
    }

    /// MIC's configuration, when it is configured to run.
    pub async fn mic_config(&self) -> Option<MicConfig> {
        self.running
            .lock()
            .await
            .mic
            .as_ref()
            .map(|r| r.config.clone())
    }

    /// The `holderIdentity` of MIC's leader lock, `None` without a lock or holder.
    pub async fn mic_leader(&self) -> Result<Option<String>, LocalError> {
        let args = self
            .mic_config()
            .await
            .map(|c| c.extra_args)
            .unwrap_or_default();
        self.lease_holder(&args).await
    }

    /// Every configured replica: where it runs, whether it is up and whether it leads.
    pub async fn mic_replicas(&self) -> Result<Vec<MicReplicaState>, LocalError> {
        let mut running = self.running.lock().await;
        self.replica_states(&mut running).await
    }

    /// Stops the addressed replicas that are up with `signal` (MIC dies at once either way;
    /// its lease stays until it expires) and waits until a stopped leader's watches are closed;
    /// returns the slots stopped.
    pub async fn stop_mic_replicas(
        &self,
        which: MicSelector,
        signal: StopSignal,
    ) -> Result<Vec<u8>, LocalError> {
        let mut running = self.running.lock().await;
        let states = self.replica_states(&mut running).await?;
        if which == MicSelector::Leader && !states.iter().any(|s| s.leader && s.up) {
            return Err(LocalError::Config(format!(
                "no running MIC replica holds the lease ({})",
                describe(&states)
            )));
        }
        let slots: Vec<u8> = states
            .iter()
            .filter(|s| s.up && selected(s, which))
            .map(|s| s.slot)
            .collect();
        self.stop_mic_slots(&mut running, &slots, signal).await?;
        Ok(slots)
    }

    /// Starts the addressed replicas that are down, with MIC's configuration, and waits until
    /// MIC is ready; returns the slots started.
    pub async fn start_mic_replicas(&self, which: MicSelector) -> Result<Vec<u8>, LocalError> {
        let mut running = self.running.lock().await;
        running.require_apiserver("start MIC")?;
        let down = self.down_mic_slots(&mut running, which).await?;
        self.start_mic_slots(&mut running, &down).await?;
        Ok(down)
    }

    /// Starts those of `slots` that are configured and down (e.g. the replicas a restart
    /// stopped, whoever leads meanwhile) and waits until MIC is ready.
    pub async fn start_mic_replica_slots(&self, slots: &[u8]) -> Result<(), LocalError> {
        let mut running = self.running.lock().await;
        running.require_apiserver("start MIC")?;
        let down: Vec<u8> = self
            .down_mic_slots(&mut running, MicSelector::All)
            .await?
            .into_iter()
            .filter(|slot| slots.contains(slot))
            .collect();
        self.start_mic_slots(&mut running, &down).await
    }

    /// Each addressed replica's `/healthz`, labelled with its slot and role.
    pub async fn mic_health(&self, which: MicSelector) -> Result<Vec<HealthReading>, LocalError> {
        let (states, ports) = {
            let mut running = self.running.lock().await;
            let states = self.replica_states(&mut running).await?;
            let ports = running
                .mic
                .as_ref()
                .map(|r| r.probe_ports.clone())
                .unwrap_or_default();
            (states, ports)
        };
        let mut readings = Vec::new();
        for state in states.iter().filter(|s| selected(s, which)) {
            let role = if state.leader { "leader" } else { "follower" };
            let answer = match (state.up, ports.get(&state.slot)) {
                (true, Some(port)) => {
                    read_healthz(&self.known_node(&state.node)?.netns, *port).await
                }
                _ => Err(format!("MIC replica {} is not running", state.slot)),
            };
            readings.push(HealthReading {
                instance: format!("mic#{} ({role})", state.slot),
                answer,
            });
        }
        Ok(readings)
    }

    /// Whether an up replica answers `Active` (it leads and its watches are, or are being,
    /// opened).
    pub(super) async fn mic_leads(&self, running: &mut Running) -> bool {
        for (netns, port) in self.up_probes(running) {
            if is_active(&read_healthz(netns, port).await) {
                return true;
            }
        }
        false
    }

    /// Slots meant to run whose process exited on its own (a leader that lost its lease
    /// exits).
    pub(super) fn exited_mic_slots(&self, running: &mut Running) -> Vec<u8> {
        let Running { registry, mic, .. } = running;
        let Some(run) = mic else {
            return Vec::new();
        };
        run.slots
            .iter()
            .copied()
            .filter(|slot| {
                registry
                    .process_mut(&Role::Mic(*slot))
                    .is_some_and(|p| p.exited().is_some())
            })
            .collect()
    }

    /// Spawns `slots` (all down) and waits until MIC is ready: each started replica answers
    /// `/healthz`, one replica leads, and the leader's watches are open. The started replicas
    /// are stopped again when that fails.
    pub(super) async fn start_mic_slots(
        &self,
        running: &mut Running,
        slots: &[u8],
    ) -> Result<(), LocalError> {
        if slots.is_empty() {
            return Ok(());
        }
        let ready = self.spawn_and_wait(running, slots).await;
        if ready.is_err()
            && let Err(e) = self.stop_mic_slots(running, slots, StopSignal::Kill).await
        {
            tracing::warn!("stopping MIC after it failed to start: {e}");
        }
        ready
    }

    /// Waits until an up replica answers `Active`; fails when none is up any more.
    pub(super) async fn wait_mic_leads(&self, running: &mut Running) -> Result<(), LocalError> {
        if running.mic.as_ref().is_none_or(|r| r.slots.is_empty()) {
            return Ok(());
        }
        let led = until(Poll::every(POLL, MIC_READY_TIMEOUT), || {
            let probes = self.up_probes(running);
            async move {
                if probes.is_empty() {
                    return Check::Failed("no MIC replica is running".to_string());
                }
                let mut seen = Vec::new();
                for (netns, port) in probes {
                    let answer = read_healthz(netns, port).await;
                    if is_active(&answer) {
                        return Check::Done(());
                    }
                    seen.push(match answer {
                        Ok((status, body)) => format!("{status} {body:?}"),
                        Err(e) => e,
                    });
                }
                Check::Pending(format!("replicas answered {}", seen.join(", ")))
            }
        })
        .await;
        led.map_err(|source| LocalError::Wait {
            what: "waiting for a MIC replica to lead (answer Active)".into(),
            source,
        })
    }

    async fn spawn_and_wait(&self, running: &mut Running, slots: &[u8]) -> Result<(), LocalError> {
        let program = self.mic_program()?;
        let config = running
            .mic
            .as_ref()
            .map(|r| r.config.clone())
            .ok_or_else(|| LocalError::Config("MIC is not configured".into()))?;
        for slot in slots {
            let node = self.known_node(&config.nodes[usize::from(*slot)])?;
            let probe_port = free_port_in(&node.netns)?;
            let metrics_port = free_port_in(&node.netns)?;
            let instance = config.instance_of(*slot);
            let args = mic_args(
                &MicFlags {
                    kubeconfig: &self.kubeconfig,
                    cloud_config: &config.cloud_config,
                    instance: &instance,
                    probe_port,
                    metrics_port,
                    lease_duration: (config.replicas > 1).then_some(MIC_REPLICATED_LEASE),
                },
                &config.extra_args,
            );
            let log = self.mic_log(*slot);
            append_log(
                &log,
                &format!(
                    "=== podid: starting MIC replica {slot} in node {} {} ===\n",
                    node.name,
                    args.join(" ")
                ),
            )?;
            let mut cmd = node.netns.exec_command(&program);
            cmd.args(&args)
                .env("MIC_POD_NAMESPACE", MIC_POD_NAMESPACE)
                .env_remove("KUBECONFIG")
                .env_remove("HTTP_PROXY")
                .env_remove("HTTPS_PROXY")
                .env_remove("http_proxy")
                .env_remove("https_proxy")
                .env_remove("AZURE_ENVIRONMENT_FILEPATH");
            for (key, value) in &config.extra_env {
                cmd.env(key, value);
            }
            let role = Role::Mic(*slot);
            // One that exited on its own is still registered.
            running.registry.forget_process(&role)?;
            running.registry.spawn(role, cmd, &log)?;
            if let Some(run) = running.mic.as_mut() {
                run.slots.insert(*slot);
                run.probe_ports.insert(*slot, probe_port);
            }
        }
        for slot in slots {
            let (node, port) = self.slot_probe(running, *slot)?;
            let process = running
                .registry
                .process_mut(&Role::Mic(*slot))
                .expect("just spawned");
            wait_healthz(
                &format!("MIC replica {slot}"),
                &node.netns,
                port,
                process,
                Wanted::Answering,
                MIC_READY_TIMEOUT,
            )
            .await?;
        }
        self.wait_mic_leads(running).await?;
        let mut others = self.watchers(running).await;
        others.mic = false;
        wait_for_watches(
            &self.client,
            "MIC",
            &others.mic_targets(),
            WatchState::Open,
            WATCHES_TIMEOUT,
        )
        .await
    }

    /// Stops `slots` where they are up, forgets them, and waits until a stopped leader's
    /// watches are closed (a remaining leader's stay).
    async fn stop_mic_slots(
        &self,
        running: &mut Running,
        slots: &[u8],
        signal: StopSignal,
    ) -> Result<(), LocalError> {
        let mut stopped_any = false;
        for slot in slots {
            let role = Role::Mic(*slot);
            let up = running.registry.is_up(&role);
            if let Some(process) = running.registry.process_mut(&role) {
                if up {
                    stop_process(process, signal, MIC_STOP_GRACE).await;
                    stopped_any = true;
                    tracing::debug!(slot, ?signal, "MIC replica stopped");
                }
                running.registry.forget_process(&role)?;
            }
        }
        if !stopped_any || !running.registry.is_up(&Role::ApiServer) {
            return Ok(());
        }
        // Until they close, a stopped leader's watches would pass for a next component's.
        let others = self.watchers(running).await;
        wait_for_watches(
            &self.client,
            "the stopped MIC",
            &others.mic_targets(),
            WatchState::Closed,
            WATCHES_TIMEOUT,
        )
        .await
    }

    /// The addressed slots that are meant to run and are down.
    async fn down_mic_slots(
        &self,
        running: &mut Running,
        which: MicSelector,
    ) -> Result<Vec<u8>, LocalError> {
        let states = self.replica_states(running).await?;
        Ok(states
            .iter()
            .filter(|s| !s.up && selected(s, which))
            .map(|s| s.slot)
            .collect())
    }

    async fn replica_states(
        &self,
        running: &mut Running,
    ) -> Result<Vec<MicReplicaState>, LocalError> {
        let Some(run) = &running.mic else {
            return Ok(Vec::new());
        };
        let config = run.config.clone();
        let slots: Vec<u8> = run.slots.iter().copied().collect();
        let holder = self.lease_holder(&config.extra_args).await?;
        Ok(slots
            .into_iter()
            .map(|slot| {
                let instance = config.instance_of(slot);
                MicReplicaState {
                    slot,
                    node: config.nodes[usize::from(slot)].clone(),
                    up: running.registry.is_up(&Role::Mic(slot)),
                    leader: holder.as_deref() == Some(instance.as_str()),
                    instance,
                }
            })
            .collect())
    }

    /// The lock's holder, read from the API server.
    async fn lease_holder(&self, mic_args: &[String]) -> Result<Option<String>, LocalError> {
        let lock = LeaderLock::from_args(mic_args);
        lock.holder(&self.client).await.map_err(|e| {
            LocalError::kube(
                format!("reading MIC's leader lock ({})", lock.describe()),
                e,
            )
        })
    }

    /// Namespace and `/healthz` port of every up replica.
    fn up_probes(&self, running: &mut Running) -> Vec<(&NetNamespace, u16)> {
        let up: Vec<u8> = configured_slots(running)
            .into_iter()
            .filter(|slot| running.registry.is_up(&Role::Mic(*slot)))
            .collect();
        up.into_iter()
            .filter_map(|slot| {
                let (node, port) = self.slot_probe(running, slot).ok()?;
                Some((&node.netns, port))
            })
            .collect()
    }

    fn slot_probe(&self, running: &Running, slot: u8) -> Result<(&LocalNode, u16), LocalError> {
        let run = running
            .mic
            .as_ref()
            .ok_or_else(|| LocalError::Config("MIC is not configured".into()))?;
        let node = self.known_node(&run.config.nodes[usize::from(slot)])?;
        let port = run.probe_ports.get(&slot).copied().ok_or_else(|| {
            LocalError::Config(format!("MIC replica {slot} has never been started"))
        })?;
        Ok((node, port))
    }

    fn mic_program(&self) -> Result<PathBuf, LocalError> {
        self.config
            .binaries
            .mic
            .clone()
            .ok_or_else(|| LocalError::MissingProgram {
                program: "mic".into(),
                hint: "no MIC binary was configured (Binaries::mic)".into(),
            })
    }

    fn validate_mic(&self, config: &MicConfig) -> Result<(), LocalError> {
        if config.replicas == 0 || usize::from(config.replicas) > config.nodes.len() {
            return Err(LocalError::Config(format!(
                "MIC needs 1 to {} replicas (one per listed node), not {}",
                config.nodes.len(),
                config.replicas
            )));
        }
        for node in &config.nodes {
            self.known_node(node)?;
        }
        self.mic_program().map(|_| ())
    }
}

/// The slots MIC is configured to run in.
fn configured_slots(running: &Running) -> Vec<u8> {
    running
        .mic
        .as_ref()
        .map(|r| r.slots.iter().copied().collect())
        .unwrap_or_default()
}

/// The slots `config.replicas` replicas run in: the lease holder's first (it takes the lease
/// back at once), then the lowest free ones.
fn choose_slots(config: &MicConfig, holder: Option<&str>) -> Vec<u8> {
    let all = 0..u8::try_from(config.nodes.len()).unwrap_or(u8::MAX);
    let held = all
        .clone()
        .find(|slot| holder == Some(config.instance_of(*slot).as_str()));
    held.into_iter()
        .chain(all.filter(|slot| Some(*slot) != held))
        .take(usize::from(config.replicas))
        .collect()
}

fn selected(state: &MicReplicaState, which: MicSelector) -> bool {
    match which {
        MicSelector::All => true,
        MicSelector::Leader => state.leader,
        MicSelector::Followers => !state.leader,
    }
}

/// The replicas in one line, for errors.
fn describe(states: &[MicReplicaState]) -> String {
    if states.is_empty() {
        return "MIC is not configured".into();
    }
    states
        .iter()
        .map(|s| {
            format!(
                "replica {} ({}) {}{}",
                s.slot,
                s.instance,
                if s.up { "up" } else { "down" },
                if s.leader { ", holds the lease" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(replicas: u8) -> MicConfig {
        MicConfig {
            replicas,
            nodes: vec!["node-0".into(), "node-1".into()],
            cloud_config: "/w/azure.json".into(),
            instance: "podid-abc123".into(),
            extra_args: Vec::new(),
            extra_env: Vec::new(),
        }
    }

    #[test]
    fn the_lease_holders_slot_starts_first() {
        assert_eq!(choose_slots(&config(1), None), [0]);
        assert_eq!(choose_slots(&config(2), None), [0, 1]);
        assert_eq!(choose_slots(&config(1), Some("podid-abc123-1")), [1]);
        assert_eq!(choose_slots(&config(2), Some("podid-abc123-1")), [1, 0]);
        assert_eq!(
            choose_slots(&config(1), Some("another-run-0")),
            [0],
            "a lease of someone else's is waited out by slot 0"
        );
    }

    #[test]
    fn leader_and_followers_are_told_apart_by_the_lease() {
        let state = |slot, leader| MicReplicaState {
            slot,
            instance: format!("podid-abc123-{slot}"),
            node: format!("node-{slot}"),
            up: true,
            leader,
        };
        let (lead, follow) = (state(0, true), state(1, false));
        assert!(selected(&lead, MicSelector::Leader) && !selected(&lead, MicSelector::Followers));
        assert!(
            selected(&follow, MicSelector::Followers) && !selected(&follow, MicSelector::Leader)
        );
        assert!(selected(&follow, MicSelector::All));
        assert_eq!(
            describe(&[lead, follow]),
            "replica 0 (podid-abc123-0) up, holds the lease; replica 1 (podid-abc123-1) up"
        );
    }
}
