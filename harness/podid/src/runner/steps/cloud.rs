//! `cloud` steps: changes an operator makes behind MIC's back. What a step puts on a machine
//! is taken off at the trial's end, and the cluster identity it takes off is put back.

use podid_scenario::{CloudStep, MIC_PRINCIPAL, Name, NodeIdentityChange, RoleAssignmentDecl};

use crate::instance::CLUSTER_IDENTITY;
use crate::provider::{Machine, RoleChange};
use crate::runner::error::StepError;
use crate::runner::scenario_run::ScenarioRun;

/// The resource ID of an identity a step names (`cluster` included).
fn resource_id(run: &ScenarioRun<'_>, identity: &Name) -> Result<String, StepError> {
    run.inst
        .identity_resource_id(identity)
        .ok_or_else(|| match identity.as_str() {
            CLUSTER_IDENTITY => StepError::NoClusterIdentity,
            other => StepError::UnknownIdentity(other.to_string()),
        })
}

/// Whether `machine` holds `id` now; `None` when the cloud cannot say.
async fn holds(run: &ScenarioRun<'_>, machine: &Machine, id: &str) -> Option<bool> {
    let held = run
        .env
        .provider
        .cloud
        .machine_identities(machine)
        .await
        .ok()?;
    Some(
        held.user_assigned
            .iter()
            .any(|h| h.eq_ignore_ascii_case(id)),
    )
}

async fn assign(run: &mut ScenarioRun<'_>, change: &NodeIdentityChange) -> Result<(), StepError> {
    let id = resource_id(run, &change.identity)?;
    let machine = run.machine(&change.node)?;
    // The cluster identity is the provider's: taken off at the end only if it was not there.
    let undo = match change.identity.as_str() {
        CLUSTER_IDENTITY => holds(run, &machine, &id).await == Some(false),
        _ => true,
    };
    run.env
        .provider
        .cloud
        .assign_identity(&machine, &id)
        .await?;
    let entry = (machine, id);
    if undo && !run.created.assignments.contains(&entry) {
        run.created.assignments.push(entry);
    }
    Ok(())
}

async fn unassign(run: &mut ScenarioRun<'_>, change: &NodeIdentityChange) -> Result<(), StepError> {
    let id = resource_id(run, &change.identity)?;
    let machine = run.machine(&change.node)?;
    // The cluster identity is put back at the end if it was there (or nobody can tell).
    let restore = change.identity.as_str() == CLUSTER_IDENTITY
        && holds(run, &machine, &id).await != Some(false);
    run.env
        .provider
        .cloud
        .unassign_identity(&machine, &id)
        .await?;
    let entry = (machine, id);
    run.created.assignments.retain(|a| *a != entry);
    if restore && !run.created.removals.contains(&entry) {
        run.created.removals.push(entry);
    }
    Ok(())
}

/// A role assignment in the cloud's terms: the principal's object ID, the real account name.
fn role_change(run: &ScenarioRun<'_>, r: &RoleAssignmentDecl) -> Result<RoleChange, StepError> {
    let inst = &run.inst;
    let name = r.principal.as_str();
    let principal_id = match name {
        MIC_PRINCIPAL => run
            .env
            .provider
            .cloud
            .mic_principal_id()
            .ok_or_else(|| StepError::UnknownPrincipal(name.to_string()))?,
        CLUSTER_IDENTITY => inst
            .cluster_identity
            .as_ref()
            .map(|c| c.principal_id.clone())
            .ok_or(StepError::NoClusterIdentity)?,
        _ => inst
            .identities
            .get(name)
            .map(|i| i.principal_id.clone())
            .or_else(|| {
                inst.service_principals
                    .get(name)
                    .map(|s| s.object_id.clone())
            })
            .ok_or_else(|| StepError::UnknownPrincipal(name.to_string()))?,
    };
    let account = match &r.account {
        None => None,
        Some(a) => Some(
            inst.accounts
                .get(a.as_str())
                .cloned()
                .ok_or_else(|| StepError::UnknownAccount(a.value.clone()))?,
        ),
    };
    Ok(RoleChange {
        principal_id,
        role: r.role.value,
        account,
        container: r.container.as_ref().map(|c| c.value.clone()),
    })
}

/// Performs a `cloud` step; returns what it did worth showing (a new principal ID).
pub(super) async fn change(
    run: &mut ScenarioRun<'_>,
    c: &CloudStep,
) -> Result<Option<String>, StepError> {
    let env = run.env;
    let cloud = &env.provider.cloud;
    if let Some(a) = &c.assign {
        assign(run, a).await?;
    } else if let Some(a) = &c.unassign {
        unassign(run, a).await?;
    } else if let Some(node) = &c.enable_system_assigned {
        let machine = run.machine(node)?;
        let before = cloud.machine_identities(&machine).await?;
        let principal = cloud.enable_system_assigned(&machine).await?;
        if before.system_assigned.is_none() {
            run.created.system_assigned.push(machine);
        }
        let shown = format!(
            "{}'s system-assigned identity has principal {principal}",
            node.value
        );
        run.inst
            .system_assigned
            .insert(node.value.clone(), principal);
        return Ok(Some(shown));
    } else if let Some(r) = &c.add_role {
        cloud.change_role(&role_change(run, r)?, true).await?;
    } else if let Some(r) = &c.remove_role {
        cloud.change_role(&role_change(run, r)?, false).await?;
    } else if let Some(name) = &c.delete_identity {
        let values = run
            .inst
            .identities
            .get(name.as_str())
            .cloned()
            .ok_or_else(|| StepError::UnknownIdentity(name.value.clone()))?;
        cloud.delete_identity(&values).await?;
        // The cloud took it off every machine.
        let gone = values.resource_id.to_ascii_lowercase();
        run.created
            .assignments
            .retain(|(_, id)| id.to_ascii_lowercase() != gone);
    } else if let Some(name) = &c.recreate_identity {
        let old = run
            .inst
            .identities
            .get(name.as_str())
            .cloned()
            .ok_or_else(|| StepError::UnknownIdentity(name.value.clone()))?;
        let new = cloud.recreate_identity(&old).await?;
        let shown = format!(
            "identity {} now has client ID {} and principal {}",
            name.value, new.client_id, new.principal_id
        );
        run.inst.retired_identities.push(old);
        run.inst.identities.insert(name.value.clone(), new);
        return Ok(Some(shown));
    } else {
        return Err(StepError::NoAction);
    }
    Ok(None)
}
