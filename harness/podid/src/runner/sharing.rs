//! Whether a trial may run beside others, decided from its scenario before anything runs.
//!
//! Trials with the same NMI/MIC configuration share the cluster. A trial must have it to itself
//! when what it does or checks cannot be kept apart from other trials: it stops or restarts
//! shared components, runs its own MIC replicas, changes what every trial's nodes hold, puts
//! objects other than pods in MIC's namespace (or pods there while counting
//! AzureAssignedIdentities), or counts cloud requests that cannot be attributed to it (see
//! [`super::attribution`]).

use podid_scenario::reference::{self, Piece, Root};
use podid_scenario::{
    Action, CloudStep, MIC_NAMESPACE, MIC_PRINCIPAL, NmiMode, ObjectKind, RequestExpect, Scenario,
    Service,
};

use super::Trial;
use crate::instance::CLUSTER_IDENTITY;
use crate::provider::cloud::service_name;

/// Why `trial` needs the cluster to itself, or `None` when it can share it.
pub fn exclusive_reason(trial: &Trial) -> Option<String> {
    let scenario = trial.scenario();
    let file = trial.file.path.display().to_string();
    if trial.mode == NmiMode::Standard && scenario.mic.replica_count() != 1 {
        let at = scenario
            .mic
            .replicas
            .as_ref()
            .map(|r| r.at)
            .unwrap_or_default();
        return Some(format!(
            "it runs {} MIC replicas ({file}:{at})",
            scenario.mic.replica_count()
        ));
    }
    if let Some(why) = uses_mic_namespace(scenario) {
        return Some(why);
    }
    if let Some(why) = counts_assignments_with_pods_in_mic_namespace(trial) {
        return Some(why);
    }
    if let Some(why) = loads_mic(trial) {
        return Some(why);
    }
    if let Some(why) = changes_cloud_behaviour(scenario) {
        return Some(format!("{why} ({file})"));
    }
    if let Some(fault) = scenario
        .faults
        .iter()
        .find(|f| !fault_is_own(&f.value, scenario))
    {
        return Some(format!(
            "it injects {} faults that other trials' requests would meet ({file}:{})",
            service_name(fault.value.service.value),
            fault.at
        ));
    }
    for (index, step) in trial.steps() {
        let at = format!("{file}:{}", step.at);
        if let Some(fault) = step
            .value
            .faults
            .iter()
            .find(|f| !fault_is_own(&f.value, scenario))
        {
            return Some(format!(
                "step {index} injects {} faults that other trials' requests would meet ({file}:{})",
                service_name(fault.value.service.value),
                fault.at
            ));
        }
        for action in step.value.actions() {
            match action {
                Action::Lifecycle(a, target) => {
                    return Some(
                        format!(
                            "step {index} {}s {:?}, which every trial uses ({at})",
                            a.keyword(),
                            target.component.value
                        )
                        .to_lowercase(),
                    );
                }
                Action::Cloud(c) if changes_shared_machines(c) => {
                    return Some(format!(
                        "step {index} changes node machines for every trial ({at})"
                    ));
                }
                Action::Cloud(c)
                    if c.add_role
                        .iter()
                        .chain(&c.remove_role)
                        .any(|r| r.value.principal.value == MIC_PRINCIPAL) =>
                {
                    return Some(format!(
                        "step {index} changes the roles of MIC's principal, which every trial's MIC uses ({at})"
                    ));
                }

                Action::Apply(cluster) => {
                    if let Some(why) = cluster_in_mic_namespace(cluster) {
                        return Some(format!("step {index} applies {why} ({at})"));
                    }
                }
                _ => {}
            }
        }
        let counted = step
            .value
            .expect
            .iter()
            .flat_map(|e| &e.requests)
            .chain(step.value.wait.iter().flat_map(|w| &w.requests));
        for r in counted {
            if let Some(why) = unattributable(&r.value, scenario) {
                return Some(format!(
                    "step {index} counts {} requests {why} ({file}:{})",
                    service_name(r.value.service),
                    r.at
                ));
            }
        }
    }
    None
}

/// Cloud-wide behaviour (ARM authorization or long-running writes, IMDS throttling or delays)
/// applies to every trial's requests, and roles for MIC's principal to every trial's MIC.
fn changes_cloud_behaviour(scenario: &Scenario) -> Option<&'static str> {
    if scenario.cloud.arm.is_some() {
        return Some("cloud.arm changes how ARM answers every trial's MIC");
    }
    if scenario.cloud.imds.is_some() {
        return Some("cloud.imds changes how IMDS answers every trial");
    }
    let mic_role = scenario
        .cloud
        .role_assignments
        .iter()
        .any(|ra| ra.value.principal.value == MIC_PRINCIPAL);
    mic_role.then_some("it changes the roles of MIC's principal, which every trial's MIC uses")
}

/// A fault only the trial's own requests meet: one limited to a client ID of its own
/// identities or service principals.
fn fault_is_own(fault: &podid_scenario::FaultDecl, scenario: &Scenario) -> bool {
    fault
        .client_id
        .as_ref()
        .is_some_and(|c| own_client_id(c, scenario))
}

/// More pods than this in a standard-mode trial keep the shared MIC busy for everyone.
pub const MANY_PODS: usize = 10;

/// How many pods a trial creates in all (groups counted by member).
pub fn pod_count(trial: &Trial) -> usize {
    let applied = trial.steps().filter_map(|(_, s)| s.value.apply.as_ref());
    std::iter::once(&trial.scenario().cluster)
        .chain(applied)
        .flat_map(|c| c.pods.iter())
        .map(|(name, pod)| pod.member_names(name).len())
        .sum()
}

/// Why a standard-mode trial would slow MIC down for every trial beside it: MIC works through
/// one queue with a throttled API client, and a trial's pods wait behind another's forty.
fn loads_mic(trial: &Trial) -> Option<String> {
    let pods = pod_count(trial);
    (trial.mode == NmiMode::Standard && pods > MANY_PODS).then(|| {
        format!("it creates {pods} pods, which keep the shared MIC busy for every other trial")
    })
}

/// A cloud step whose effect reaches beyond the trial's own identities: the cluster identity
/// is on every trial's nodes, and a system-assigned identity changes what IMDS gives every pod.
fn changes_shared_machines(c: &CloudStep) -> bool {
    let names_cluster = c
        .assign
        .iter()
        .chain(&c.unassign)
        .any(|change| change.identity.value == CLUSTER_IDENTITY);
    names_cluster || c.enable_system_assigned.is_some()
}

fn uses_mic_namespace(scenario: &Scenario) -> Option<String> {
    cluster_in_mic_namespace(&scenario.cluster).map(|why| format!("it declares {why}"))
}

fn in_mic(ns: &Option<podid_scenario::Name>) -> bool {
    ns.as_ref().is_some_and(|n| n.value == MIC_NAMESPACE)
}

/// A trial's AzureAssignedIdentities are told apart by their pods' namespaces; a trial that
/// puts pods in MIC's namespace, which every trial may use, cannot count its own there.
fn counts_assignments_with_pods_in_mic_namespace(trial: &Trial) -> Option<String> {
    let applied = trial.steps().filter_map(|(_, s)| s.value.apply.as_ref());
    let (pod, _) = std::iter::once(&trial.scenario().cluster)
        .chain(applied)
        .flat_map(|c| c.pods.iter())
        .find(|(_, p)| in_mic(&p.namespace))?;
    let counts = trial.steps().any(|(_, s)| {
        let waits = s.value.wait.as_ref().is_some_and(|w| {
            w.count.is_some()
                && w.kind.as_ref().map(|k| k.value) == Some(ObjectKind::AzureAssignedIdentity)
        });
        let checks = s.value.expect.iter().flat_map(|e| &e.objects).any(|o| {
            o.value.count.is_some() && o.value.kind.value == ObjectKind::AzureAssignedIdentity
        });
        waits || checks
    });
    counts.then(|| {
        format!(
            "it counts AzureAssignedIdentities and puts pod `{}` in MIC's namespace",
            pod.value
        )
    })
}

/// Object names collide in MIC's namespace, which every trial shares (pods there get the
/// trial's suffix instead, see `runner::pods`).
fn cluster_in_mic_namespace(cluster: &podid_scenario::Cluster) -> Option<String> {
    let named = |what: &str, name: &podid_scenario::Name| {
        format!("{what} `{}` in MIC's namespace", name.value)
    };
    if let Some((name, _)) = cluster
        .azure_identities
        .iter()
        .find(|(_, o)| in_mic(&o.namespace))
    {
        return Some(named("AzureIdentity", name));
    }
    if let Some((name, _)) = cluster
        .azure_identity_bindings
        .iter()
        .find(|(_, o)| in_mic(&o.namespace))
    {
        return Some(named("AzureIdentityBinding", name));
    }
    if let Some((name, _)) = cluster
        .azure_pod_identity_exceptions
        .iter()
        .find(|(_, o)| in_mic(&o.namespace))
    {
        return Some(named("AzurePodIdentityException", name));
    }
    if let Some((name, _)) = cluster.secrets.iter().find(|(_, o)| in_mic(&o.namespace)) {
        return Some(named("Secret", name));
    }
    None
}

/// Why requests matching `r` cannot be told apart from other trials' requests, or `None`
/// when every one of them carries a value unique to the trial: a client ID of one of its own
/// identities or service principals (not pinned in the scenario), a storage account's host,
/// or the identity IDs in the body of MIC's ARM PATCH/PUT.
pub fn unattributable(r: &RequestExpect, scenario: &Scenario) -> Option<&'static str> {
    if let Some(client) = &r.client_id {
        return (!own_client_id(client, scenario))
            .then_some("for a client ID that is not one of the scenario's own unpinned ones");
    }
    match r.service {
        Service::Blob => None,
        Service::Arm
            if r.method.as_deref().is_some_and(|m| {
                m.eq_ignore_ascii_case("PATCH") || m.eq_ignore_ascii_case("PUT")
            }) =>
        {
            None
        }
        Service::Arm => Some("without `clientId` or method PATCH/PUT"),
        Service::Imds | Service::Aad => Some("without `clientId`"),
    }
}

/// Whether `template` is exactly `${identities.<n>.clientId}` or `${servicePrincipals.<n>.clientId}`
/// for a name whose client ID the run generates (and so no other trial has).
fn own_client_id(template: &str, scenario: &Scenario) -> bool {
    let Ok(pieces) = reference::parse(template) else {
        return false;
    };
    let [Piece::Ref(r)] = pieces.as_slice() else {
        return false;
    };
    let Some(name) = r.name.as_deref() else {
        return false;
    };
    if r.field != "clientId" {
        return false;
    }
    match r.root {
        Root::Identities => scenario
            .cloud
            .identities
            .get(name)
            .is_some_and(|d| d.client_id.is_none()),
        Root::ServicePrincipals => scenario
            .cloud
            .service_principals
            .get(name)
            .is_some_and(|d| d.client_id.is_none()),
        _ => false,
    }
}
