//! The one registry of what a run must undo. Every process, network namespace and API forwarder
//! the cluster starts is registered here and forgotten here; the run's state file
//! (`/run/podid/<run>.json`) is rewritten on each change, so a killed run can be cleaned by
//! `podid clean`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use podid_netns::NetNamespace;

use crate::LocalError;
use crate::forwarder::LoopbackForwarder;
use crate::process::ChildProcess;
use crate::state::{NamespaceKind, RecordedNamespace, RecordedProcess, RunState};

/// How long a synchronous teardown waits for each killed process to be reaped.
const REAP_LIMIT: Duration = Duration::from_secs(3);

/// What a registered process is. Declared in teardown order: NMI and MIC before the control
/// plane they talk to, kube-apiserver before its etcd.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    /// NMI on the named node.
    Nmi(String),
    /// MIC replica `slot` (0 or 1; leader election decides which one leads).
    Mic(u8),
    /// kube-apiserver.
    ApiServer,
    /// etcd.
    Etcd,
}

impl Role {
    /// NMI on `node`.
    pub(crate) fn nmi(node: &str) -> Self {
        Self::Nmi(node.to_string())
    }
}

/// The process name used in logs, the state file and [`TeardownReport::processes_stopped`].
impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nmi(node) => write!(f, "nmi-{node}"),
            Self::Mic(slot) => write!(f, "mic-{slot}"),
            Self::ApiServer => f.write_str("kube-apiserver"),
            Self::Etcd => f.write_str("etcd"),
        }
    }
}

/// What [`crate::LocalCluster::shutdown`] did.
#[derive(Debug, Clone, Default)]
pub struct TeardownReport {
    /// Processes stopped (name and pid).
    pub processes_stopped: Vec<String>,
    /// Network namespaces deleted.
    pub namespaces_deleted: Vec<String>,
    /// Anything that could not be undone.
    pub errors: Vec<String>,
}

/// Everything one run must undo, mirrored in its state file.
pub(crate) struct RunRegistry {
    /// The persisted record; `None` once torn down, so a later teardown (e.g. `Drop` after
    /// `shutdown`) does nothing.
    state: Option<RunState>,
    processes: BTreeMap<Role, ChildProcess>,
    /// API forwarders, by the namespace they listen in (they go when it goes).
    forwarders: BTreeMap<String, LoopbackForwarder>,
}

impl RunRegistry {
    /// Starts the record of run `run_id`, owned by this process, and writes its state file
    /// before anything is started.
    pub(crate) fn create(run_id: &str) -> Result<Self, LocalError> {
        let owner = RecordedProcess::of("podid", std::process::id())
            .ok_or_else(|| LocalError::Config("cannot read own /proc entry".into()))?;
        let state = RunState {
            run_id: run_id.to_string(),
            owner,
            processes: Vec::new(),
            namespaces: Vec::new(),
        };
        state.save()?;
        Ok(Self {
            state: Some(state),
            processes: BTreeMap::new(),
            forwarders: BTreeMap::new(),
        })
    }

    /// Whether [`RunRegistry::teardown`] (or its blocking twin) has run.
    pub(crate) fn is_torn_down(&self) -> bool {
        self.state.is_none()
    }

    /// Applies `change` to the state and writes it.
    fn update(&mut self, change: impl FnOnce(&mut RunState)) -> Result<(), LocalError> {
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| LocalError::Config("the run was already torn down".into()))?;
        change(state);
        state.save()
    }

    /// Spawns `cmd` as `role` (output appended to `log`) and records it. The process is held
    /// before the state file is written, so even a failed write leaves it to teardown.
    pub(crate) fn spawn(
        &mut self,
        role: Role,
        cmd: tokio::process::Command,
        log: &Path,
    ) -> Result<&mut ChildProcess, LocalError> {
        if self.processes.contains_key(&role) {
            return Err(LocalError::Config(format!("{role} already runs")));
        }
        let name = role.to_string();
        let process = ChildProcess::spawn(&name, cmd, log)?;
        let recorded = RecordedProcess::of(&name, process.pid());
        self.processes.insert(role.clone(), process);
        self.update(|state| {
            state.processes.retain(|p| p.name != name);
            state.processes.extend(recorded);
        })?;
        Ok(self.processes.get_mut(&role).expect("just inserted"))
    }

    /// Whether the process in `role` is registered and still running (one that exited on its
    /// own, like a MIC that lost its lease, stays registered until forgotten but is down).
    pub(crate) fn is_up(&mut self, role: &Role) -> bool {
        self.processes
            .get_mut(role)
            .is_some_and(|p| p.exited().is_none())
    }

    /// The process registered in `role`, to wait on or stop it while it stays recorded.
    pub(crate) fn process_mut(&mut self, role: &Role) -> Option<&mut ChildProcess> {
        self.processes.get_mut(role)
    }

    /// Forgets the process in `role` (call once it is stopped) and returns it.
    pub(crate) fn forget_process(
        &mut self,
        role: &Role,
    ) -> Result<Option<ChildProcess>, LocalError> {
        let process = self.processes.remove(role);
        let name = role.to_string();
        self.update(|state| state.processes.retain(|p| p.name != name))?;
        Ok(process)
    }

    /// Records namespace `name` as `kind`, then creates it: a run killed in between still has
    /// it in its state file.
    pub(crate) fn create_namespace(
        &mut self,
        name: &str,
        kind: NamespaceKind,
    ) -> Result<NetNamespace, LocalError> {
        self.update(|state| {
            state.namespaces.retain(|n| n.name != name);
            state.namespaces.push(RecordedNamespace {
                name: name.to_string(),
                kind,
            });
        })?;
        Ok(NetNamespace::create(name)?)
    }

    /// Deletes namespace `name` (a missing one is fine) with its forwarder, and forgets it once
    /// it is gone; one that could not be deleted stays registered for teardown.
    pub(crate) fn delete_namespace(&mut self, name: &str) -> Result<(), LocalError> {
        self.forwarders.remove(name);
        NetNamespace::delete_by_name(name)?;
        self.update(|state| state.namespaces.retain(|n| n.name != name))
    }

    /// Holds `forwarder`, which listens inside namespace `namespace`, until that namespace goes.
    pub(crate) fn register_forwarder(&mut self, namespace: &str, forwarder: LoopbackForwarder) {
        self.forwarders.insert(namespace.to_string(), forwarder);
    }

    /// Kills every process (awaiting each exit), deletes every namespace, pods first, and
    /// removes the state file.
    pub(crate) async fn teardown(&mut self) -> TeardownReport {
        let mut report = TeardownReport::default();
        self.forwarders.clear();
        for (_, mut process) in std::mem::take(&mut self.processes) {
            process.kill().await;
            report.processes_stopped.push(stopped(&process));
        }
        self.delete_namespaces(&mut report);
        report
    }

    /// [`RunRegistry::teardown`] without a runtime (for `Drop` and failed starts): each killed
    /// process is reaped for at most a few seconds.
    pub(crate) fn teardown_blocking(&mut self) -> TeardownReport {
        let mut report = TeardownReport::default();
        self.forwarders.clear();
        for (_, mut process) in std::mem::take(&mut self.processes) {
            process.kill_blocking(REAP_LIMIT);
            report.processes_stopped.push(stopped(&process));
        }
        self.delete_namespaces(&mut report);
        report
    }

    /// Deletes the recorded namespaces, pods before nodes (a pod's veth goes with it), and the
    /// state file.
    fn delete_namespaces(&mut self, report: &mut TeardownReport) {
        let Some(state) = self.state.take() else {
            return;
        };
        let (pods, nodes): (Vec<_>, Vec<_>) = state
            .namespaces
            .iter()
            .partition(|n| n.kind == NamespaceKind::Pod);
        for namespace in pods.into_iter().chain(nodes) {
            match NetNamespace::delete_by_name(&namespace.name) {
                Ok(()) => report.namespaces_deleted.push(namespace.name.clone()),
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        RunState::remove(&state.run_id);
    }
}

/// How a stopped process is named in the report.
fn stopped(process: &ChildProcess) -> String {
    format!("{} (pid {})", process.name(), process.pid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_named_like_their_processes_and_sorted_in_teardown_order() {
        let mut roles = vec![
            Role::Etcd,
            Role::ApiServer,
            Role::Mic(1),
            Role::nmi("node-b"),
        ];
        roles.push(Role::nmi("node-a"));
        roles.push(Role::Mic(0));
        roles.sort();
        let names: Vec<String> = roles.iter().map(Role::to_string).collect();
        assert_eq!(
            names,
            [
                "nmi-node-a",
                "nmi-node-b",
                "mic-0",
                "mic-1",
                "kube-apiserver",
                "etcd"
            ]
        );
    }
}
