//! Checks a parsed scenario for what the YAML types cannot express: references to undeclared
//! names, contradictory expectations, steps that check nothing.
//!
//! One module per part of a file: [`header`] (name, modes, NMI and MIC settings), [`cloud`],
//! [`cluster`], [`faults`] (the mock cloud's misbehaviour), [`steps`] (actions) and [`expect`]
//! (what steps observe). They share the
//! [`Checker`], which collects problems, and [`Declared`], the names the scenario declares.

mod cloud;
mod cluster;
mod expect;
mod faults;
mod header;
mod steps;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::located::{Located, Position};
use crate::model::*;
use crate::problem::Problem;
use crate::reference::{self, Root};

/// Everything a scenario declares, by kind, across `cluster` and `apply` steps.
struct Declared<'a> {
    identities: HashSet<&'a str>,
    service_principals: HashSet<&'a str>,
    accounts: HashSet<&'a str>,
    namespaces: HashSet<&'a str>,
    /// Names of single pods and of the members of pod groups: what `${pods.<name>.*}` may name.
    pods: HashSet<String>,
    /// Pod groups and their size: steps may name a group, references may not.
    pod_groups: HashMap<&'a str, u32>,
    /// Single pods (not groups) and their declarations, for `ipOf`.
    single_pods: HashMap<&'a str, &'a PodDecl>,
}

impl Declared<'_> {
    /// Whether a step may send requests from `name` (a pod, a group member or a whole group).
    fn pod_or_group(&self, name: &str) -> bool {
        self.pods.contains(name) || self.pod_groups.contains_key(name)
    }

    /// Where pods are declared and which names they have, for hints.
    fn pods_hint(&self) -> String {
        let mut names: Vec<String> = self
            .pods
            .iter()
            .filter(|p| !self.is_group_member(p))
            .cloned()
            .collect();
        names.extend(self.pod_groups.iter().map(|(g, n)| group_span(g, *n)));
        names.sort();
        if names.is_empty() {
            "declare it under `cluster.pods`".into()
        } else {
            format!("declared under `cluster.pods`: {}", names.join(", "))
        }
    }

    fn is_group_member(&self, pod: &str) -> bool {
        self.pod_groups.iter().any(|(g, n)| {
            pod.strip_prefix(*g)
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|i| i.parse::<u32>().ok())
                .is_some_and(|i| i < *n)
        })
    }
}

/// `workers (group: workers-0 … workers-2)`.
fn group_span(group: &str, size: u32) -> String {
    format!("{group} (group: {})", member_span(group, size))
}

/// `workers-0 … workers-2`.
fn member_span(group: &str, size: u32) -> String {
    match size {
        0 => "no members".into(),
        1 => format!("{group}-0"),
        n => format!("{group}-0 … {group}-{}", n - 1),
    }
}

/// Where a template is rendered, which decides the references that have a value there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Steps and objects: everything the scenario declares.
    Anywhere,
    /// `nmi.flags` and `mic.flags`: rendered when the components are configured, before the
    /// trial's pods exist.
    Flags,
}

/// Collects problems for one file.
struct Checker<'a> {
    file: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, at: Position, message: impl Into<String>, help: impl Into<String>) {
        self.problems
            .push(Problem::new(self.file, at, message).with_help(help));
    }

    fn template(&mut self, t: &Template, declared: &Declared) {
        self.text(&t.value, t.at, declared, Scope::Anywhere);
    }

    fn text(&mut self, text: &str, at: Position, declared: &Declared, scope: Scope) {
        match reference::parse(text) {
            Err(e) => self.report(at, e.message, e.help),
            Ok(pieces) => {
                for piece in pieces {
                    if let reference::Piece::Ref(r) = piece {
                        self.reference(&r, at, declared, scope);
                    }
                }
            }
        }
    }

    fn reference(
        &mut self,
        r: &reference::Reference,
        at: Position,
        declared: &Declared,
        scope: Scope,
    ) {
        if scope == Scope::Flags && r.root == Root::Pods {
            self.report(
                at,
                format!("{r} cannot be used in flags: flags are rendered before any pod exists"),
                "flags may refer to identities, service principals, storage accounts, namespaces, nodes, `cloud` and `scenario`; pass pod values in a step instead",
            );
            return;
        }
        let Some(name) = &r.name else { return };
        let known = |set: &HashSet<&str>| set.contains(name.as_str());
        let (found, hint) = match r.root {
            Root::Identities if name == CLUSTER_IDENTITY && !known(&declared.identities) => (
                false,
                "the provider's cluster identity is `${cloud.clusterIdentityClientId}`, `${cloud.clusterIdentityResourceId}` and `${cloud.clusterIdentityPrincipalId}`".to_string(),
            ),
            Root::Identities => (
                known(&declared.identities),
                hint_declared("cloud.identities", &declared.identities),
            ),
            Root::ServicePrincipals => (
                known(&declared.service_principals),
                hint_declared("cloud.servicePrincipals", &declared.service_principals),
            ),
            Root::StorageAccounts => (
                known(&declared.accounts),
                hint_declared("cloud.storageAccounts", &declared.accounts),
            ),
            Root::Pods => {
                if let Some(size) = declared.pod_groups.get(name.as_str()) {
                    self.report(
                        at,
                        format!("{r} names pod group `{name}`, which has no single {}", r.field),
                        format!("name one member: {}", member_span(name, *size)),
                    );
                    return;
                }
                (declared.pods.contains(name.as_str()), declared.pods_hint())
            }
            Root::Namespaces if name == MIC_NAMESPACE && !known(&declared.namespaces) => (
                false,
                "`mic` is MIC's namespace, not a declared one: write `${scenario.micNamespace}`"
                    .to_string(),
            ),
            Root::Namespaces => (
                known(&declared.namespaces),
                hint_declared("cluster.namespaces", &declared.namespaces),
            ),
            Root::Nodes => (
                LOGICAL_NODES.contains(&name.as_str()),
                format!("nodes are {}", LOGICAL_NODES.join(" and ")),
            ),
            Root::Cloud | Root::Scenario => (true, String::new()),
        };
        if !found {
            let what = if r.root == Root::Nodes {
                format!("{r} refers to node `{name}`, which no provider has")
            } else {
                format!("{r} refers to `{name}`, which is not declared")
            };
            self.report(at, what, hint);
        }
    }

    fn json(&mut self, value: &Located<serde_json::Value>, declared: &Declared) {
        for s in reference::json_strings(&value.value) {
            self.text(s, value.at, declared, Scope::Anywhere);
        }
    }

    /// A `namespace` key: a declared namespace, or `mic` for MIC's namespace.
    fn namespace(&mut self, ns: &Option<Name>, declared: &Declared) {
        if let Some(ns) = ns {
            if ns.as_str() != MIC_NAMESPACE && !declared.namespaces.contains(ns.as_str()) {
                self.report(
                    ns.at,
                    format!("namespace `{ns}` is not declared"),
                    "declare it under `cluster.namespaces` (it is made unique per run); leave `namespace` out for the scenario's own namespace, or write `mic` for MIC's namespace",
                );
            }
        }
    }

    /// The `namespace` of an object a step addresses: as [`Checker::namespace`], and
    /// AzureAssignedIdentities only in MIC's namespace.
    fn object_namespace(
        &mut self,
        kind: Option<ObjectKind>,
        ns: &Option<Name>,
        declared: &Declared,
    ) {
        match (kind, ns) {
            (Some(ObjectKind::AzureAssignedIdentity), Some(ns)) if ns.as_str() != MIC_NAMESPACE => {
                self.report(
                    ns.at,
                    format!("AzureAssignedIdentities live in MIC's namespace, not in `{ns}`"),
                    "MIC creates them in its own namespace: leave `namespace` out (it defaults to `mic` for this kind) or write `namespace: mic`",
                )
            }
            _ => self.namespace(ns, declared),
        }
    }

    /// A logical node name.
    fn node(&mut self, node: &Name) {
        if !LOGICAL_NODES.contains(&node.as_str()) {
            self.report(
                node.at,
                format!("there is no node `{node}`"),
                format!("nodes are {}", LOGICAL_NODES.join(" and ")),
            );
        }
    }

    /// Dotted field paths into an object (`status.status`) and the templates they must equal.
    fn fields(&mut self, fields: &indexmap::IndexMap<String, Template>, declared: &Declared) {
        for (path, value) in fields {
            if !is_field_path(path) {
                self.report(
                    value.at,
                    format!("`{path}` is not a field path"),
                    "write field names joined by dots, e.g. `status.status` or `spec.azureIdentityRef.name`",
                );
            }
            self.template(value, declared);
        }
    }
}

fn hint_declared(section: &str, set: &HashSet<&str>) -> String {
    if set.is_empty() {
        format!("declare it under `{section}`")
    } else {
        let mut names: Vec<&str> = set.iter().copied().collect();
        names.sort();
        format!("declared under `{section}`: {}", names.join(", "))
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `a.b.c`: non-empty names without spaces, joined by dots.
fn is_field_path(s: &str) -> bool {
    s.split('.')
        .all(|part| !part.is_empty() && !part.contains(char::is_whitespace))
}

/// All problems in a scenario (empty when it is valid).
pub fn validate(file: &Path, s: &Scenario) -> Vec<Problem> {
    let mut c = Checker {
        file,
        problems: Vec::new(),
    };
    let declared = declare(&mut c, s);
    header::check_header(&mut c, s, &declared);
    cloud::check_cloud(&mut c, &s.cloud, &declared);
    cloud::check_behaviour(&mut c, s);
    cluster::check_cluster(&mut c, &s.cluster, &s.cloud, &declared);
    for fault in &s.faults {
        faults::check_fault(&mut c, fault, &declared);
    }
    steps::check_steps(&mut c, s, &declared);
    c.problems
}

/// Names declared anywhere, so steps may refer to objects an earlier `apply` created. Reports
/// pod names given twice, directly or through a pod group's members.
fn declare<'a>(c: &mut Checker, s: &'a Scenario) -> Declared<'a> {
    let mut declared = Declared {
        identities: s.cloud.identities.keys().map(|k| k.as_str()).collect(),
        service_principals: s
            .cloud
            .service_principals
            .keys()
            .map(|k| k.as_str())
            .collect(),
        accounts: s
            .cloud
            .storage_accounts
            .keys()
            .map(|k| k.as_str())
            .collect(),
        namespaces: s.cluster.namespaces.iter().map(|n| n.as_str()).collect(),
        pods: HashSet::new(),
        pod_groups: HashMap::new(),
        single_pods: HashMap::new(),
    };
    let mut pod_decls: Vec<(&Name, &PodDecl)> = s.cluster.pods.iter().collect();
    for step in &s.steps {
        if let Some(apply) = &step.value.apply {
            declared
                .namespaces
                .extend(apply.namespaces.iter().map(|n| n.as_str()));
            pod_decls.extend(apply.pods.iter());
        }
    }
    cluster::declare_pods(c, &pod_decls, &mut declared);
    declared
}
