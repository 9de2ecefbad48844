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

/// `cluster` names the provider's cluster identity, so nothing in a scenario may be called that.
fn reserved_name(c: &mut Checker, name: &Name, what: &str) {
    if name.as_str() == CLUSTER_IDENTITY {
        c.report(
            name.at,
            format!("`{CLUSTER_IDENTITY}` is reserved for the provider's cluster identity and cannot name {what}"),
            "choose another name; `cluster` in `cloud` steps and `expect.nodeIdentities` means the identity the provider gave MIC in azure.json",
        );
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
        c.report(
            ra.principal.at,
            format!("principal `{}` is not declared", ra.principal.value),
            hint,
        );
    }
    match cloud.storage_accounts.get(ra.account.as_str()) {
        None => c.report(
            ra.account.at,
            format!("storage account `{}` is not declared", ra.account.value),
            hint_declared("cloud.storageAccounts", &declared.accounts),
        ),
        Some(account) => {
            if let Some(container) = &ra.container {
                if !account.containers.contains_key(container.as_str()) {
                    c.report(
                        container.at,
                        format!(
                            "account `{}` has no container `{container}`",
                            ra.account.value
                        ),
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
