//! What a trial needs from its provider, read off the scenario, and the reason it is skipped
//! when the provider lacks any of it.

use podid_scenario::{
    Action, ClientKind, MIC_PRINCIPAL, Name, NmiMode, PodDecl, PodPhase, Position, Step,
};

use super::Trial;
use crate::instance::CLUSTER_IDENTITY;
use crate::provider::{Capabilities, Capability};

/// One need of a trial and where in the scenario it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub capability: Capability,
    /// What in the scenario needs it, with its file position.
    pub because: String,
}

/// Everything `trial` needs, in scenario order, each capability once.
pub fn requirements(trial: &Trial) -> Vec<Requirement> {
    let scenario = trial.scenario();
    let file = trial.file.path.display().to_string();
    let at = |p: Position| format!("{file}:{p}");
    let mut out: Vec<Requirement> = Vec::new();
    let mut need = |capability: Capability, because: String| {
        if !out.iter().any(|r| r.capability == capability) {
            out.push(Requirement {
                capability,
                because,
            });
        }
    };
    let mode_at = scenario
        .modes
        .iter()
        .find(|m| m.value == trial.mode)
        .map(|m| m.at)
        .unwrap_or_default();
    match trial.mode {
        NmiMode::Managed => need(
            Capability::ManagedMode,
            format!("the trial runs in managed mode ({})", at(mode_at)),
        ),
        NmiMode::Standard => need(
            Capability::StandardMode,
            format!("the trial runs in standard mode ({})", at(mode_at)),
        ),
    }
    for (section, flags) in [("nmi", &scenario.nmi.flags), ("mic", &scenario.mic.flags)] {
        if let Some(flag) = flags.first() {
            need(
                Capability::ComponentFlags,
                format!("{section}.flags sets `{}` ({})", flag.value, at(flag.at)),
            );
        }
    }
    if let Some((node, _)) = scenario.cloud.node_identities.iter().next() {
        need(
            Capability::PerNodeMachines,
            format!(
                "cloud.nodeIdentities assigns identities to {} ({})",
                node.value,
                at(node.at)
            ),
        );
    }
    let sp_identity = scenario
        .cluster
        .azure_identities
        .iter()
        .chain(
            scenario
                .steps
                .iter()
                .flat_map(|s| s.value.apply.iter().flat_map(|a| a.azure_identities.iter())),
        )
        .find(|(_, ai)| ai.service_principal.is_some());
    if let Some((name, _)) = sp_identity {
        need(
            Capability::ServicePrincipalIdentities,
            format!(
                "AzureIdentity `{}` is a service principal ({})",
                name.value,
                at(name.at)
            ),
        );
    }
    if trial.mode == NmiMode::Standard && scenario.mic.replica_count() != 1 {
        let at_replicas = scenario
            .mic
            .replicas
            .as_ref()
            .map(|r| r.at)
            .unwrap_or_default();
        need(
            Capability::MicReplicas,
            format!(
                "mic.replicas is {} ({})",
                scenario.mic.replica_count(),
                at(at_replicas)
            ),
        );
    }
    let pending = all_pods(trial).find(|(_, p)| {
        p.phase
            .as_ref()
            .is_some_and(|ph| ph.value == PodPhase::Pending)
    });
    if let Some((name, pod)) = pending {
        let where_ = pod.phase.as_ref().map(|p| p.at).unwrap_or(name.at);
        need(
            Capability::PendingPods,
            format!("pod `{}` stays Pending ({})", name.value, at(where_)),
        );
    }
    let forged = all_pods(trial).find_map(|(name, p)| p.ip_of.as_ref().map(|other| (name, other)));
    if let Some((name, other)) = forged {
        need(
            Capability::ForgedPodStatus,
            format!(
                "pod `{}` reports the address of `{}` ({})",
                name.value,
                other.value,
                at(other.at)
            ),
        );
    }
    if let Some(fault) = scenario.faults.first() {
        need(
            Capability::FaultRules,
            format!("the scenario injects faults ({})", at(fault.at)),
        );
    }
    let behaviour = [
        scenario.cloud.arm.as_ref().map(|_| "cloud.arm"),
        scenario.cloud.imds.as_ref().map(|_| "cloud.imds"),
    ];
    if let Some(key) = behaviour.into_iter().flatten().next() {
        need(
            Capability::CloudBehaviour,
            format!("{key} changes how the cloud behaves ({file})"),
        );
    }
    if let Some(ra) = scenario
        .cloud
        .role_assignments
        .iter()
        .find(|ra| ra.value.principal.value == MIC_PRINCIPAL)
    {
        need(
            Capability::CloudBehaviour,
            format!("a role assignment names MIC's principal ({})", at(ra.at)),
        );
    }
    for flag in scenario.nmi.flags.iter().chain(&scenario.mic.flags) {
        if names_cluster_identity(&flag.value) {
            need(
                Capability::ClusterIdentity,
                format!(
                    "flag `{}` names the cluster identity ({})",
                    flag.value,
                    at(flag.at)
                ),
            );
        }
    }
    if names_cluster_identity(&serde_json::to_string(&scenario.cluster).unwrap_or_default()) {
        need(
            Capability::ClusterIdentity,
            format!("the cluster section names the cluster identity ({file})"),
        );
    }
    for (i, step) in trial.steps() {
        let step_at = at(step.at);
        for (capability, because) in step_needs(&step.value) {
            need(capability, format!("step {i} {because} ({step_at})"));
        }
    }
    out
}

/// Every pod a trial declares: in its cluster section and in its steps' `apply`.
fn all_pods(trial: &Trial) -> impl Iterator<Item = (&Name, &PodDecl)> {
    trial.scenario().cluster.pods.iter().chain(
        trial
            .steps()
            .flat_map(|(_, s)| s.value.apply.iter().flat_map(|a| a.pods.iter())),
    )
}

/// Whether a template (or a serialised section) refers to `${cloud.clusterIdentity…}`.
fn names_cluster_identity(text: &str) -> bool {
    text.contains("${cloud.clusterIdentity")
}

/// What one step needs, each with the reason as the step's own phrase.
fn step_needs(step: &Step) -> Vec<(Capability, String)> {
    let mut out = Vec::new();
    if step.counts_requests() {
        out.push((Capability::RequestLog, "expects cloud requests".to_string()));
    }
    if !step.faults.is_empty() {
        out.push((Capability::FaultRules, "injects faults".to_string()));
    }
    for action in step.actions() {
        match action {
            Action::Exec(e) => match &e.client {
                Some(client) => out.push((
                    client_capability(client.value),
                    format!(
                        "runs the {} client",
                        crate::clients::client_name(client.value)
                    ),
                )),
                None => out.push((Capability::Exec, "runs a command in a pod".into())),
            },
            Action::Token(t) if t.source_address.is_some() => out.push((
                Capability::SpoofedSource,
                "sends from another address".into(),
            )),
            Action::Cloud(c) => {
                out.push((Capability::CloudChanges, "changes the cloud".into()));
                let on_machines = c.assign.is_some()
                    || c.unassign.is_some()
                    || c.enable_system_assigned.is_some();
                if on_machines {
                    out.push((
                        Capability::PerNodeMachines,
                        "changes a node's machine".into(),
                    ));
                }
                let cluster = c
                    .assign
                    .iter()
                    .chain(&c.unassign)
                    .map(|a| &a.identity)
                    .chain(
                        c.add_role
                            .iter()
                            .chain(&c.remove_role)
                            .map(|r| &r.principal),
                    )
                    .any(|n| n.value == CLUSTER_IDENTITY);
                if cluster {
                    out.push((
                        Capability::ClusterIdentity,
                        "names the cluster identity".into(),
                    ));
                }
            }
            Action::Lifecycle(a, t) => out.push((
                Capability::Restarts,
                format!("{}s {:?}", a.keyword(), t.component.value).to_lowercase(),
            )),
            Action::Health(_) => {
                out.push((Capability::HealthEndpoints, "reads component health".into()))
            }
            _ => {}
        }
    }
    if let Some(e) = &step.expect {
        if !e.node_identities.is_empty() {
            out.push((
                Capability::PerNodeMachines,
                "expects identities on node machines".into(),
            ));
            out.push((
                Capability::CloudChanges,
                "reads the identities on node machines".into(),
            ));
            let cluster = e
                .node_identities
                .values()
                .flat_map(|m| m.has.iter().chain(&m.lacks))
                .any(|n| n.value == CLUSTER_IDENTITY);
            if cluster {
                out.push((
                    Capability::ClusterIdentity,
                    "expects the cluster identity on a node".into(),
                ));
            }
        }
        if !e.iptables.is_empty() {
            out.push((
                Capability::NodeIptables,
                "expects NMI's iptables chain".into(),
            ));
        }
    }
    if names_cluster_identity(&serde_json::to_string(step).unwrap_or_default()) {
        out.push((
            Capability::ClusterIdentity,
            "names the cluster identity".into(),
        ));
    }
    out
}

/// The capability that runs `client` in pods.
fn client_capability(client: ClientKind) -> Capability {
    match client {
        ClientKind::Python => Capability::PythonClient,
        ClientKind::Javascript => Capability::JavaScriptClient,
        ClientKind::Azcli => Capability::AzCliClient,
    }
}

/// Why the trial cannot run on a provider with `capabilities`, or `None` when it can.
pub fn skip_reason(
    requirements: &[Requirement],
    capabilities: &Capabilities,
    provider: &str,
) -> Option<String> {
    let missing: Vec<String> = requirements
        .iter()
        .filter(|r| !capabilities.has(r.capability))
        .map(|r| format!("{}: {}", r.capability, r.because))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "provider `{provider}` lacks what this trial needs: {}",
            missing.join("; ")
        )
    })
}
