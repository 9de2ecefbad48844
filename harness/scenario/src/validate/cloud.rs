//! The `cloud` section: identities, service principals, storage, roles and node identities; and
//! the names `cloud` steps and `expect.nodeIdentities` use.

use std::collections::HashSet;

use super::{Checker, Declared, hint_declared, is_dns_label};
use crate::located::Located;
use crate::model::*;

pub(super) fn check_cloud(c: &mut Checker, cloud: &Cloud, declared: &Declared) {
    let mut ids = HashSet::new();
    let mut unique_guid = |c: &mut Checker, v: &Located<String>| {
        if !is_guid(v) {
            c.report(
                v.at,
                format!("`{}` is not a GUID", v.value),
                "write it as 8-4-4-4-12 hex digits, or leave it out to have one generated",
            );
        }
        if !ids.insert(v.value.to_ascii_lowercase()) {
            c.report(
                v.at,
                format!("ID `{}` is used twice", v.value),
                "every identity and service principal needs its own IDs",
            );
        }
    };
    for (name, id) in &cloud.identities {
        if !is_dns_label(name) {
            c.report(
                name.at,
                format!("identity name `{name}` must be a short lowercase name"),
                "use lowercase letters, digits and `-`",
            );
        }
        reserved_name(c, name, "an identity");
        for v in [&id.client_id, &id.principal_id].into_iter().flatten() {
            unique_guid(c, v);
        }
    }
    for (name, sp) in &cloud.service_principals {
        if declared.identities.contains(name.as_str()) {
            c.report(
                name.at,
                format!("`{name}` is both an identity and a service principal"),
                "role assignments refer to principals by name; use distinct names",
            );
        }
        reserved_name(c, name, "a service principal");
        match (&sp.secret, sp.certificate) {
            (None, false) => c.report(
                name.at,
                format!("service principal `{name}` has no credential"),
                "give `secret: <text>` or `certificate: true`",
            ),
            (Some(s), true) => c.report(
                s.at,
                format!("service principal `{name}` has both a secret and a certificate"),
                "choose one credential",
            ),
            _ => {}
        }
        for v in [&sp.client_id, &sp.object_id].into_iter().flatten() {
            unique_guid(c, v);
        }
    }
    for (name, account) in &cloud.storage_accounts {
        if name.len() > 16
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            || name.is_empty()
        {
            c.report(
                name.at,
                format!("storage account name `{name}` must be 1-16 lowercase letters or digits"),
                "podid appends a run suffix to make the 3-24 character Azure name",
            );
        }
        for (container, blobs) in &account.containers {
            if container.len() < 3 || !is_dns_label(container) {
                c.report(
                    container.at,
                    format!("container name `{container}` is not valid in Azure"),
                    "3-63 lowercase letters, digits and `-`",
                );
            }
            for blob in blobs.keys() {
                if blob.is_empty() {
                    c.report(blob.at, "blob name is empty", "give each blob a name");
                }
            }
        }
    }
    for ra in &cloud.role_assignments {
        check_role(c, &ra.value, cloud, declared, false);
    }
    for (node, identities) in &cloud.node_identities {
        c.node(node);
        for id in identities {
            if id.as_str() == CLUSTER_IDENTITY && !declared.identities.contains(CLUSTER_IDENTITY) {
                c.report(
                    id.at,
                    "`cloud.nodeIdentities` lists the scenario's own identities, not the cluster identity",
                    "the provider decides where its cluster identity is; to put it on a node write a step `cloud: {assign: {identity: cluster, node: node-0}}`",
                );
            } else if !declared.identities.contains(id.as_str()) {
                c.report(
                    id.at,
                    format!("identity `{id}` is not declared"),
                    hint_declared("cloud.identities", &declared.identities),
                );
            }
        }
    }
}

/// `cluster` names the provider's cluster identity and `mic` MIC's ARM principal, so nothing in
/// a scenario may be called either.
fn reserved_name(c: &mut Checker, name: &Name, what: &str) {
    if name.as_str() == CLUSTER_IDENTITY {
        c.report(
            name.at,
            format!("`{CLUSTER_IDENTITY}` is reserved for the provider's cluster identity and cannot name {what}"),
            "choose another name; `cluster` in `cloud` steps and `expect.nodeIdentities` means the identity the provider gave MIC in azure.json",
        );
    } else if name.as_str() == MIC_PRINCIPAL {
        c.report(
            name.at,
            format!("`{MIC_PRINCIPAL}` is reserved for the principal MIC authenticates to ARM as and cannot name {what}"),
            "choose another name; `principal: mic` in role assignments gives MIC its ARM roles",
        );
    }
}

/// `cloud.arm` and `cloud.imds`: ARM's only caller is MIC, so ARM behaviour needs a mode where
/// MIC runs; a rate that would make IMDS useless is refused.
pub(super) fn check_behaviour(c: &mut Checker, s: &Scenario) {
    let managed_only = s.modes.iter().all(|m| m.value == NmiMode::Managed);
    if let Some(arm) = &s.cloud.arm {
        let keys: Vec<&str> = [
            ("authorization", arm.authorization),
            ("asyncPolls", arm.async_polls.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect();
        if managed_only && !keys.is_empty() {
            // `cloud.arm` has no position of its own: point at what it conflicts with.
            let at = arm
                .async_polls
                .as_ref()
                .map(|p| p.at)
                .or_else(|| s.modes.first().map(|m| m.at).filter(|at| at.line > 0))
                .unwrap_or(s.name.at);
            c.report(
                    at,
                    format!(
                        "`cloud.arm.{}` {} the ARM calls MIC makes, and the scenario only runs in managed mode, where MIC does not run",
                        keys.join("` and `cloud.arm."),
                        if keys.len() == 1 { "shapes" } else { "shape" }
                    ),
                    "drop `cloud.arm`, or add `standard` to `modes`",
                );
        }
    }
    if let Some(imds) = &s.cloud.imds {
        if let Some(rps) = &imds.requests_per_second {
            if rps.value == 0 {
                c.report(
                    rps.at,
                    "`requestsPerSecond: 0` would throttle every identity request",
                    "give the rate above which IMDS answers 429 (1 or more); to refuse every request use a fault: `faults: [{service: imds, status: 429}]`",
                );
            }
        }
    }
}

/// A role assignment, declared under `cloud.roleAssignments` or made by an `addRole` or
/// `removeRole` step: the principal, the account and its container exist. Steps may also give
/// the cluster identity a role (`cluster_allowed`); the declared assignments are the scenario's
/// own.
pub(super) fn check_role(
    c: &mut Checker,
    ra: &RoleAssignmentDecl,
    cloud: &Cloud,
    declared: &Declared,
    cluster_allowed: bool,
) {
    let principal = ra.principal.as_str();
    let role = ra.role.value;
    if principal == MIC_PRINCIPAL && !declared.identities.contains(MIC_PRINCIPAL) {
        if !role.is_arm() {
            c.report(
                ra.role.at,
                format!("`mic` stands for MIC's ARM principal, which takes ARM roles only, not `{}`", role.as_str()),
                "give `mic` `Virtual Machine Contributor` or `Managed Identity Operator`; storage roles go to identities and service principals",
            );
        } else if !cloud.arm.as_ref().is_some_and(|a| a.authorization) {
            c.report(
                ra.principal.at,
                "MIC's ARM roles are checked only when `cloud.arm.authorization` is true, which it is not",
                "add `cloud: {arm: {authorization: true}}` so ARM checks MIC's roles, or drop this assignment",
            );
        }
    } else {
        let known = declared.identities.contains(principal)
            || declared.service_principals.contains(principal)
            || (cluster_allowed && principal == CLUSTER_IDENTITY);
        if !known {
            let mut all: HashSet<&str> = declared.identities.clone();
            all.extend(declared.service_principals.iter());
            let mut hint = hint_declared("cloud.identities or cloud.servicePrincipals", &all);
            if cluster_allowed {
                hint.push_str(", or write `cluster` for the provider's cluster identity");
            }
            hint.push_str(", or `mic` for MIC's ARM principal (ARM roles only)");
            c.report(
                ra.principal.at,
                format!("principal `{}` is not declared", ra.principal.value),
                hint,
            );
        }
    }
    if role.is_arm() {
        if let Some(account) = &ra.account {
            c.report(
                account.at,
                format!(
                    "`{}` is an ARM role on the subscription and takes no `account`",
                    role.as_str()
                ),
                "drop `account` (and `container`); storage accounts scope storage roles",
            );
        } else if let Some(container) = &ra.container {
            c.report(
                container.at,
                format!(
                    "`{}` is an ARM role on the subscription and takes no `container`",
                    role.as_str()
                ),
                "drop `container`; containers scope storage roles",
            );
        }
        return;
    }
    let Some(account) = &ra.account else {
        c.report(
            ra.role.at,
            format!("`{}` is assigned on a storage account, and `account` is missing", role.as_str()),
            format!(
                "add `account: <name>` ({}); only `Virtual Machine Contributor` and `Managed Identity Operator` take none",
                hint_declared("cloud.storageAccounts", &declared.accounts)
            ),
        );
        return;
    };
    match cloud.storage_accounts.get(account.as_str()) {
        None => c.report(
            account.at,
            format!("storage account `{}` is not declared", account.value),
            hint_declared("cloud.storageAccounts", &declared.accounts),
        ),
        Some(decl) => {
            if let Some(container) = &ra.container {
                if !decl.containers.contains_key(container.as_str()) {
                    c.report(
                        container.at,
                        format!("account `{}` has no container `{container}`", account.value),
                        "declare the container under the account's `containers`",
                    );
                }
            }
        }
    }
}

/// An identity a `cloud` step puts on or takes off a machine, or an `expect.nodeIdentities`
/// entry names: declared under `cloud.identities`, or `cluster`.
pub(super) fn check_machine_identity(c: &mut Checker, id: &Name, declared: &Declared) {
    if id.as_str() == CLUSTER_IDENTITY || declared.identities.contains(id.as_str()) {
        return;
    }
    if declared.service_principals.contains(id.as_str()) {
        c.report(
            id.at,
            format!("`{id}` is a service principal, and machines hold managed identities only"),
            hint_declared("cloud.identities", &declared.identities),
        );
        return;
    }
    c.report(
        id.at,
        format!("identity `{id}` is not declared"),
        format!(
            "{}, or write `cluster` for the provider's cluster identity",
            hint_declared("cloud.identities", &declared.identities)
        ),
    );
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}
