//! The `cluster` section (and `apply` steps, which hold the same objects): namespaces,
//! AzureIdentities, bindings, exceptions, secrets, pods and raw manifests.

use std::collections::HashMap;

use super::{Checker, Declared, hint_declared, is_dns_label, member_span};
use crate::model::*;

/// Most pods one group may hold: enough for load, few enough for two nodes.
const MAX_GROUP: u32 = 100;

pub(super) fn check_cluster(c: &mut Checker, cl: &Cluster, cloud: &Cloud, declared: &Declared) {
    for ns in &cl.namespaces {
        if ns.as_str() == MIC_NAMESPACE {
            c.report(
                ns.at,
                "`mic` is MIC's namespace and cannot be declared",
                "write `namespace: mic` on an object to put it in MIC's namespace; declare other namespaces under another name",
            );
        } else if ns.len() > 40 || !is_dns_label(ns) {
            c.report(
                ns.at,
                format!("namespace name `{ns}` is not a short DNS label"),
                "lowercase letters, digits and `-`, at most 40 characters (a run suffix is added)",
            );
        }
    }
    for (name, ai) in &cl.azure_identities {
        c.namespace(&ai.namespace, declared);
        match (&ai.identity, &ai.service_principal) {
            (Some(_), Some(sp)) => c.report(
                sp.at,
                format!("AzureIdentity `{name}` names both an identity and a service principal"),
                "an AzureIdentity is either user-assigned (`identity`) or a service principal",
            ),
            (None, None) if ai.client_id.is_none() => c.report(
                name.at,
                format!("AzureIdentity `{name}` says nothing about which identity it is"),
                "give `identity: <cloud identity>`, `servicePrincipal: <name>`, or an explicit `clientId`",
            ),
            _ => {}
        }
        if let Some(id) = &ai.identity {
            if id.as_str() == CLUSTER_IDENTITY && !cloud.identities.contains_key(id.as_str()) {
                c.report(
                    id.at,
                    "`identity` names a `cloud.identities` entry; the cluster identity is not one",
                    "for an AzureIdentity of the cluster identity write `clientId: \"${cloud.clusterIdentityClientId}\"` and `resourceId: \"${cloud.clusterIdentityResourceId}\"`",
                );
            } else if !cloud.identities.contains_key(id.as_str()) {
                c.report(
                    id.at,
                    format!("identity `{id}` is not declared"),
                    hint_declared("cloud.identities", &declared.identities),
                );
            }
        }
        if let Some(sp) = &ai.service_principal {
            if !cloud.service_principals.contains_key(sp.as_str()) {
                c.report(
                    sp.at,
                    format!("service principal `{sp}` is not declared"),
                    hint_declared("cloud.servicePrincipals", &declared.service_principals),
                );
            }
        }
        for t in [&ai.client_id, &ai.resource_id].into_iter().flatten() {
            c.template(t, declared);
        }
        for t in ai.annotations.values() {
            c.template(t, declared);
        }
    }
    for (_, b) in &cl.azure_identity_bindings {
        c.namespace(&b.namespace, declared);
        c.template(&b.selector, declared);
    }
    for (name, e) in &cl.azure_pod_identity_exceptions {
        c.namespace(&e.namespace, declared);
        if e.pod_labels.is_empty() {
            c.report(
                name.at,
                format!("exception `{name}` has no `podLabels`, so it matches no pod"),
                "give at least one label, e.g. `podLabels: {app: mic}`",
            );
        }
        for t in e.pod_labels.values() {
            c.template(t, declared);
        }
    }
    for (_, secret) in &cl.secrets {
        c.namespace(&secret.namespace, declared);
        for t in secret.string_data.values() {
            c.template(t, declared);
        }
    }
    for (name, pod) in &cl.pods {
        check_pod(c, name, pod, declared);
    }
    for m in &cl.manifests {
        let obj = m.value.as_object();
        let has = |k: &str| {
            obj.and_then(|o| o.get(k))
                .and_then(|v| v.as_str())
                .is_some()
        };
        let named = obj
            .and_then(|o| o.get("metadata"))
            .and_then(|md| md.get("name"))
            .and_then(|n| n.as_str())
            .is_some();
        if !(has("apiVersion") && has("kind") && named) {
            c.report(
                m.at,
                "a manifest needs `apiVersion`, `kind` and `metadata.name`",
                "write a complete Kubernetes object",
            );
        }
        c.json(m, declared);
    }
}

fn check_pod(c: &mut Checker, name: &Name, pod: &PodDecl, declared: &Declared) {
    if name.len() > 40 || !is_dns_label(name) {
        c.report(
            name.at,
            format!("pod name `{name}` is not a short DNS label"),
            "lowercase letters, digits and `-`, at most 40 characters",
        );
    }
    c.namespace(&pod.namespace, declared);
    c.node(&pod.node);
    for t in pod.labels.values().chain(pod.annotations.values()) {
        c.template(t, declared);
    }
    if let Some(owner) = &pod.owner {
        if owner.name.trim().is_empty() {
            c.report(
                owner.name.at,
                "the owner's `name` is empty",
                "name the owning object, e.g. `mic-7d9f8b6c4` for NMI's MIC short cut",
            );
        }
        c.template(&owner.name, declared);
    }
    if let Some(ip_of) = &pod.ip_of {
        check_ip_of(c, name, pod, ip_of, declared);
    }
    if let Some(replicas) = &pod.replicas {
        if !(1..=MAX_GROUP).contains(&replicas.value) {
            c.report(
                replicas.at,
                format!(
                    "a pod group holds 1 to {MAX_GROUP} pods, not {}",
                    replicas.value
                ),
                "leave `replicas` out for a single pod",
            );
        }
    }
}

/// `ipOf`: another single pod, on the same node, that has a network of its own.
fn check_ip_of(c: &mut Checker, name: &Name, pod: &PodDecl, ip_of: &Name, declared: &Declared) {
    let target = ip_of.as_str();
    if pod.replicas.is_some() {
        c.report(
            ip_of.at,
            format!("pod group `{name}` cannot take another pod's IP"),
            "declare the pod that reports another pod's IP as a single pod (without `replicas`)",
        );
        return;
    }
    if target == name.as_str() {
        c.report(
            ip_of.at,
            format!("pod `{name}` cannot report its own IP through `ipOf`"),
            "name another pod on the same node, or drop `ipOf` for a pod with its own network",
        );
        return;
    }
    if let Some(size) = declared.pod_groups.get(target) {
        c.report(
            ip_of.at,
            format!("`ipOf` names pod group `{target}`, which has no single IP"),
            format!(
                "name a single pod; a group's members ({}) cannot be named either",
                member_span(target, *size)
            ),
        );
        return;
    }
    let Some(other) = declared.single_pods.get(target) else {
        let help = if declared.pods.contains(target) {
            "`ipOf` names a single pod declared under `cluster.pods`, not a member of a pod group"
                .to_string()
        } else {
            declared.pods_hint()
        };
        c.report(
            ip_of.at,
            format!("`ipOf` names `{target}`, which is not a single declared pod"),
            help,
        );
        return;
    };
    if other.node.as_str() != pod.node.as_str() {
        c.report(
            ip_of.at,
            format!(
                "pod `{name}` runs on {} but `{target}` runs on {}: a pod IP belongs to one node",
                pod.node.value, other.node.value
            ),
            format!(
                "put `{name}` on {} as well, where pods can share `{target}`'s address",
                other.node.value
            ),
        );
    }
    if let Some(further) = &other.ip_of {
        c.report(
            ip_of.at,
            format!("`{target}` has no network of its own either (it reports `{further}`'s IP)"),
            format!("name the pod that owns the address, `{further}`, directly"),
        );
    }
}

/// Who holds a pod name: a pod (single or group) of that name, or a member of a group.
enum Holder<'a> {
    Pod,
    Member(&'a str),
}

/// Records every pod name steps and references may use, and reports the same name given twice:
/// two pods, or a pod and a member of a pod group (`<group>-<i>`), or two groups' members.
pub(super) fn declare_pods<'a>(
    c: &mut Checker,
    pods: &[(&'a Name, &'a PodDecl)],
    declared: &mut Declared<'a>,
) {
    let mut holders: HashMap<String, Holder<'a>> = HashMap::new();
    let collision_help =
        "pod groups name their members `<group>-0`, `<group>-1`, …; rename the pod or the group";
    for (name, pod) in pods {
        match holders.get(name.as_str()) {
            Some(Holder::Pod) => c.report(
                name.at,
                format!("pod `{name}` is declared more than once"),
                "pods are addressed by name in steps; give each a distinct name",
            ),
            Some(Holder::Member(group)) => c.report(
                name.at,
                format!("pod `{name}` has the name of a member of pod group `{group}`"),
                collision_help,
            ),
            None => {
                holders.insert(name.value.clone(), Holder::Pod);
            }
        }
        let Some(replicas) = &pod.replicas else {
            declared.pods.insert(name.value.clone());
            declared.single_pods.entry(name.as_str()).or_insert(pod);
            continue;
        };
        // A group of a size out of range is reported by `check_pod`; it gets no members here.
        let size = if replicas.value <= MAX_GROUP {
            replicas.value
        } else {
            0
        };
        declared.pod_groups.insert(name.as_str(), size);
        let members = if size > 0 {
            pod.member_names(name)
        } else {
            Vec::new()
        };
        for member in members {
            match holders.get(&member) {
                Some(Holder::Pod) => c.report(
                    replicas.at,
                    format!(
                        "pod group `{name}` ({}) has a member named like pod `{member}`",
                        member_span(name, size)
                    ),
                    collision_help,
                ),
                Some(Holder::Member(other)) => c.report(
                    replicas.at,
                    format!(
                        "pod groups `{other}` and `{name}` both have a member named `{member}`"
                    ),
                    collision_help,
                ),
                None => {
                    holders.insert(member.clone(), Holder::Member(name.as_str()));
                }
            }
            declared.pods.insert(member);
        }
    }
}
