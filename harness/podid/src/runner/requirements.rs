//! What a trial needs from its provider, read off the scenario, and the reason it is skipped
//! when the provider lacks any of it.

use podid_scenario::{NmiMode, Position};

use super::Trial;
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
    for (i, step) in scenario.steps.iter().enumerate() {
        if step.value.counts_requests() {
            need(
                Capability::RequestLog,
                format!("step {} expects cloud requests ({})", i + 1, at(step.at)),
            );
        }
    }
    out
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
