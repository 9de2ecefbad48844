//! Checks a parsed scenario for what the YAML types cannot express: references to undeclared
//! names, contradictory expectations, steps that check nothing.

use std::collections::HashSet;
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
    pods: HashSet<&'a str>,
}

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
        self.text(&t.value, t.at, declared);
    }

    fn text(&mut self, text: &str, at: Position, declared: &Declared) {
        match reference::parse(text) {
            Err(e) => self.report(at, e.message, e.help),
            Ok(pieces) => {
                for piece in pieces {
                    if let reference::Piece::Ref(r) = piece {
                        self.reference(&r, at, declared);
                    }
                }
            }
        }
    }

    fn reference(&mut self, r: &reference::Reference, at: Position, declared: &Declared) {
        let Some(name) = &r.name else { return };
        let (set, section): (Option<&HashSet<&str>>, &str) = match r.root {
            Root::Identities => (Some(&declared.identities), "cloud.identities"),
            Root::ServicePrincipals => (
                Some(&declared.service_principals),
                "cloud.servicePrincipals",
            ),
            Root::StorageAccounts => (Some(&declared.accounts), "cloud.storageAccounts"),
            Root::Pods => (Some(&declared.pods), "cluster.pods"),
            Root::Namespaces => (Some(&declared.namespaces), "cluster.namespaces"),
            Root::Nodes => {
                if !LOGICAL_NODES.contains(&name.as_str()) {
                    self.report(
                        at,
                        format!("{r} refers to node `{name}`, which no provider has"),
                        format!("nodes are {}", LOGICAL_NODES.join(" and ")),
                    );
                }
                (None, "")
            }
            Root::Cloud | Root::Scenario => (None, ""),
        };
        if let Some(set) = set {
            if !set.contains(name.as_str()) {
                self.report(
                    at,
                    format!("{r} refers to `{name}`, which is not declared"),
                    hint_declared(section, set),
                );
            }
        }
    }

    fn json(&mut self, value: &Located<serde_json::Value>, declared: &Declared) {
        for s in reference::json_strings(&value.value) {
            self.text(s, value.at, declared);
        }
    }

    fn namespace(&mut self, ns: &Option<Name>, declared: &Declared) {
        if let Some(ns) = ns {
            if !declared.namespaces.contains(ns.as_str()) {
                self.report(
                    ns.at,
                    format!("namespace `{ns}` is not declared"),
                    "declare it under `cluster.namespaces` (it is made unique per run); leave `namespace` out for the scenario's own namespace",
                );
            }
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

/// All problems in a scenario (empty when it is valid).
pub fn validate(file: &Path, s: &Scenario) -> Vec<Problem> {
    let mut c = Checker {
        file,
        problems: Vec::new(),
    };

    // Names declared anywhere, so steps may refer to objects an earlier `apply` created.
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
    for (name, _) in &pod_decls {
        if !declared.pods.insert(name.as_str()) {
            c.report(
                name.at,
                format!("pod `{name}` is declared more than once"),
                "pods are addressed by name in steps; give each a distinct name",
            );
        }
    }

    // Header.
    if s.name.len() > 50 || !is_dns_label(&s.name) {
        c.report(
            s.name.at,
            format!("scenario name `{}` is not a short lowercase name", s.name.value),
            "use lowercase letters, digits and `-`, at most 50 characters (it names the test trial)",
        );
    }
    for tag in &s.tags {
        if tag.trim().is_empty() || tag.contains(char::is_whitespace) || tag.contains(',') {
            c.report(
                tag.at,
                format!("tag `{}` is not a single word", tag.value),
                "tags are single words such as `smoke` or `denial`",
            );
        }
    }
    if s.modes.is_empty() {
        c.report(
            s.name.at,
            "`modes` is empty, so the scenario would never run",
            "list `managed`, `standard` or both",
        );
    }
    let mut seen_modes = HashSet::new();
    for m in &s.modes {
        if !seen_modes.insert(m.value) {
            c.report(
                m.at,
                format!("mode `{}` is listed twice", m.value.as_str()),
                "list each mode once",
            );
        }
    }
    if !s.mic.flags.is_empty() && s.modes.iter().all(|m| m.value == NmiMode::Managed) {
        c.report(
            s.mic.flags[0].at,
            "`mic.flags` is set but the scenario only runs in managed mode, where MIC does not run",
            "drop `mic.flags` or add `standard` to `modes`",
        );
    }
    for flag in s.nmi.flags.iter().chain(&s.mic.flags) {
        if !flag.starts_with("--") {
            c.report(
                flag.at,
                format!("`{}` is not a flag", flag.value),
                "write flags in full, e.g. `--set-retry-after-header=true`",
            );
        }
    }
    for (flag, why) in [
        ("--node", "the provider sets it per node"),
        ("--operation-mode", "it comes from `modes`"),
        (
            "--nmi-port",
            "the interception rule is fixed to the provider's port",
        ),
        ("--http-probe-port", "the provider picks free ports"),
        ("--prometheus-port", "the provider picks free ports"),
    ] {
        for f in &s.nmi.flags {
            if f.value == flag || f.value.starts_with(&format!("{flag}=")) {
                c.report(
                    f.at,
                    format!("`{flag}` cannot be overridden by a scenario"),
                    why,
                );
            }
        }
    }
    for (flag, why) in [
        ("--kubeconfig", "the provider points MIC at its cluster"),
        ("--cloudconfig", "the provider points MIC at the mock cloud"),
        (
            "--leader-election-instance",
            "the provider names MIC once per run so a restarted MIC leads at once",
        ),
        ("--http-probe-port", "the provider picks free ports"),
        ("--prometheus-port", "the provider picks free ports"),
    ] {
        for f in &s.mic.flags {
            if f.value.split('=').next() == Some(flag) {
                c.report(
                    f.at,
                    format!("`{flag}` cannot be overridden by a scenario"),
                    why,
                );
            }
        }
    }

    check_cloud(&mut c, &s.cloud, &declared);
    check_cluster(&mut c, &s.cluster, &s.cloud, &declared);

    // Steps.
    if s.steps.is_empty() {
        c.report(
            s.name.at,
            "the scenario has no steps",
            "add at least one step with an `expect`",
        );
    }
    let mut checks = 0usize;
    let before = c.problems.len();
    for step in &s.steps {
        checks += check_step(&mut c, step, s, &declared);
    }
    if !s.steps.is_empty() && checks == 0 && c.problems.len() == before {
        c.report(
            s.steps[0].at,
            "no step has any expectation, so this scenario could never fail",
            "add `expect:` to a token or blob step (e.g. `status: 200`)",
        );
    }
    c.problems
}

fn check_cloud(c: &mut Checker, cloud: &Cloud, declared: &Declared) {
    let mut ids = HashSet::new();
    for (name, id) in &cloud.identities {
        if !is_dns_label(name) {
            c.report(
                name.at,
                format!("identity name `{name}` must be a short lowercase name"),
                "use lowercase letters, digits and `-`",
            );
        }
        for v in [&id.client_id, &id.principal_id].into_iter().flatten() {
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
            if !is_guid(v) {
                c.report(
                    v.at,
                    format!("`{}` is not a GUID", v.value),
                    "write it as 8-4-4-4-12 hex digits, or leave it out to have one generated",
                );
            }
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
        let ra_v = &ra.value;
        if !declared.identities.contains(ra_v.principal.as_str())
            && !declared
                .service_principals
                .contains(ra_v.principal.as_str())
        {
            let mut all: HashSet<&str> = declared.identities.clone();
            all.extend(declared.service_principals.iter());
            c.report(
                ra_v.principal.at,
                format!("principal `{}` is not declared", ra_v.principal.value),
                hint_declared("cloud.identities or cloud.servicePrincipals", &all),
            );
        }
        match cloud.storage_accounts.get(ra_v.account.as_str()) {
            None => c.report(
                ra_v.account.at,
                format!("storage account `{}` is not declared", ra_v.account.value),
                hint_declared("cloud.storageAccounts", &declared.accounts),
            ),
            Some(account) => {
                if let Some(container) = &ra_v.container {
                    if !account.containers.contains_key(container.as_str()) {
                        c.report(
                            container.at,
                            format!(
                                "account `{}` has no container `{container}`",
                                ra_v.account.value
                            ),
                            "declare the container under the account's `containers`",
                        );
                    }
                }
            }
        }
    }
    for (node, identities) in &cloud.node_identities {
        if !LOGICAL_NODES.contains(&node.as_str()) {
            c.report(
                node.at,
                format!("there is no node `{node}`"),
                format!("nodes are {}", LOGICAL_NODES.join(" and ")),
            );
        }
        for id in identities {
            if !declared.identities.contains(id.as_str()) {
                c.report(
                    id.at,
                    format!("identity `{id}` is not declared"),
                    hint_declared("cloud.identities", &declared.identities),
                );
            }
        }
    }
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_cluster(c: &mut Checker, cl: &Cluster, cloud: &Cloud, declared: &Declared) {
    for ns in &cl.namespaces {
        if ns.len() > 40 || !is_dns_label(ns) {
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
            (Some(_), Some(sp)) => c.report(sp.at, format!("AzureIdentity `{name}` names both an identity and a service principal"), "an AzureIdentity is either user-assigned (`identity`) or a service principal"),
            (None, None) if ai.client_id.is_none() => c.report(name.at, format!("AzureIdentity `{name}` says nothing about which identity it is"), "give `identity: <cloud identity>`, `servicePrincipal: <name>`, or an explicit `clientId`"),
            _ => {}
        }
        if let Some(id) = &ai.identity {
            if !cloud.identities.contains_key(id.as_str()) {
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
        if name.len() > 40 || !is_dns_label(name) {
            c.report(
                name.at,
                format!("pod name `{name}` is not a short DNS label"),
                "lowercase letters, digits and `-`, at most 40 characters",
            );
        }
        c.namespace(&pod.namespace, declared);
        if !LOGICAL_NODES.contains(&pod.node.as_str()) {
            c.report(
                pod.node.at,
                format!("there is no node `{}`", pod.node.value),
                format!("nodes are {}", LOGICAL_NODES.join(" and ")),
            );
        }
        for t in pod.labels.values().chain(pod.annotations.values()) {
            c.template(t, declared);
        }
        if let Some(owner) = &pod.owner {
            c.template(&owner.name, declared);
        }
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

/// Checks one mock-request expectation (of `expect.requests` or a `wait` step).
fn check_request(c: &mut Checker, rv: &RequestExpect, declared: &Declared) {
    if let Some(node) = &rv.node {
        if rv.service != Service::Imds {
            c.report(
                node.at,
                "`node` only applies to `service: imds` (each node has its own IMDS)",
                "drop `node` or use `service: imds`",
            );
        }
        if !LOGICAL_NODES.contains(&node.as_str()) {
            c.report(
                node.at,
                format!("there is no node `{node}`"),
                format!("nodes are {}", LOGICAL_NODES.join(" and ")),
            );
        }
    }
    for t in [&rv.client_id, &rv.path].into_iter().flatten() {
        c.template(t, declared);
    }
}

/// Checks one step; returns how many expectations it carries.
fn check_step(c: &mut Checker, step: &Located<Step>, s: &Scenario, declared: &Declared) -> usize {
    let st = &step.value;
    let actions = st.actions();
    let action = match actions.len() {
        1 => actions[0],
        0 => {
            c.report(
                step.at,
                "the step has no action",
                "give exactly one of: token, blob, apply, delete, patch, wait, sleep",
            );
            return 0;
        }
        _ => {
            let names: Vec<&str> = actions.iter().map(|a| a.keyword()).collect();
            c.report(
                step.at,
                format!("the step has several actions: {}", names.join(", ")),
                "split it into one step per action",
            );
            return 0;
        }
    };
    let pod_exists = |c: &mut Checker, pod: &Name| {
        if !declared.pods.contains(pod.as_str()) {
            c.report(
                pod.at,
                format!("pod `{pod}` is not declared"),
                hint_declared("cluster.pods", &declared.pods),
            );
        }
    };
    let probing = matches!(action, Action::Token(_) | Action::Blob(_));
    match action {
        Action::Token(t) => {
            pod_exists(c, &t.pod);
            for tpl in t
                .identity()
                .templates()
                .chain(t.resource.iter())
                .chain(t.api_version.iter())
                .chain(t.path.iter())
                .chain(t.headers.values())
                .chain(t.query.values())
            {
                c.template(tpl, declared);
            }
            if let Some(p) = &t.path {
                if !p.starts_with('/') {
                    c.report(
                        p.at,
                        format!("path `{}` does not start with `/`", p.value),
                        "write an absolute request path such as `/metadata/identity/oauth2/token`",
                    );
                }
            }
        }
        Action::Blob(b) => {
            pod_exists(c, &b.pod);
            if !s.cloud.storage_accounts.contains_key(b.account.as_str()) {
                c.report(
                    b.account.at,
                    format!("storage account `{}` is not declared", b.account.value),
                    hint_declared("cloud.storageAccounts", &declared.accounts),
                );
            }
            for tpl in b
                .identity()
                .templates()
                .chain(b.resource.iter())
                .chain(std::iter::once(&b.container))
                .chain(b.blob.iter())
                .chain(b.content.iter())
            {
                c.template(tpl, declared);
            }
            match b.op {
                BlobOp::Read | BlobOp::Write if b.blob.is_none() => c.report(
                    step.at,
                    format!("a blob `{}` needs `blob`", op_name(b.op)),
                    "name the blob to read or write",
                ),
                BlobOp::Write if b.content.is_none() => c.report(
                    step.at,
                    "a blob `write` needs `content`",
                    "give the text to upload",
                ),
                _ => {}
            }
            if b.op != BlobOp::Write {
                if let Some(content) = &b.content {
                    c.report(
                        content.at,
                        "`content` is only used by `op: write`",
                        "remove it or set `op: write`",
                    );
                }
            }
        }
        Action::Apply(cl) => {
            if cl.is_empty() {
                c.report(
                    step.at,
                    "`apply` holds no objects",
                    "give objects as under `cluster`",
                );
            }
            check_cluster(c, cl, &s.cloud, declared);
        }
        Action::Delete(r) => {
            c.namespace(&r.namespace, declared);
            c.template(&r.name, declared);
        }
        Action::Patch(p) => {
            c.namespace(&p.namespace, declared);
            c.template(&p.name, declared);
            if !p.patch.is_object() {
                c.report(
                    p.patch.at,
                    "a patch must be an object (JSON merge patch)",
                    "e.g. `patch: {spec: {selector: other}}`",
                );
            }
            c.json(&p.patch, declared);
        }
        Action::Wait(w) => {
            c.namespace(&w.namespace, declared);
            match (&w.kind, &w.name, w.requests.is_empty()) {
                (Some(_), Some(name), true) => c.template(name, declared),
                (None, None, false) => {
                    for r in &w.requests {
                        check_request(c, &r.value, declared);
                    }
                }
                _ => c.report(
                    step.at,
                    "a `wait` step waits either for an object or for mock requests",
                    "give `kind` and `name` (and `for`), or `requests`, but not both",
                ),
            }
        }
        Action::Sleep(_) => {}
        Action::Cloud(_) | Action::Lifecycle(..) | Action::Health(_) => {}
    }
    if let Some(within) = st.within {
        if !probing {
            c.report(
                step.at,
                "`within` only applies to token and blob steps",
                "use `wait` with a `timeout` for objects",
            );
        } else if within.0.is_zero() {
            c.report(
                step.at,
                "`within` must be longer than zero",
                "e.g. `within: 20s`",
            );
        }
    }
    let wait_checks = match action {
        Action::Wait(w) => w.requests.len(),
        _ => 0,
    };
    let Some(expect) = &st.expect else {
        if probing {
            c.report(
                step.at,
                format!(
                    "this {} step has no `expect`, so it checks nothing",
                    action.keyword()
                ),
                "add e.g. `expect: {status: 200}`",
            );
        }
        return wait_checks;
    };
    if !probing {
        c.report(
            step.at,
            format!("`expect` does not apply to a {} step", action.keyword()),
            "expectations go on token and blob steps",
        );
        return 0;
    }
    check_expect(c, expect, action, declared, step.at)
}

fn op_name(op: BlobOp) -> &'static str {
    match op {
        BlobOp::Read => "read",
        BlobOp::Write => "write",
        BlobOp::List => "list",
    }
}

fn check_expect(
    c: &mut Checker,
    e: &Expect,
    action: Action,
    declared: &Declared,
    step_at: Position,
) -> usize {
    let mut count = 0;
    let statuses = e.status.as_ref().map(|s| s.value.codes());
    if let Some(status) = &e.status {
        count += 1;
        let codes = status.value.codes();
        if codes.is_empty() {
            c.report(
                status.at,
                "`status` lists no codes",
                "give a code or a list of codes",
            );
        }
        for code in codes {
            if !(100..=599).contains(&code) {
                c.report(
                    status.at,
                    format!("{code} is not an HTTP status"),
                    "use a code between 100 and 599",
                );
            }
        }
    }
    count += e.headers.len() + e.absent_headers.len();
    for t in e.headers.values() {
        c.template(t, declared);
    }
    for h in &e.absent_headers {
        if e.headers.keys().any(|k| k.eq_ignore_ascii_case(h)) {
            c.report(
                step_at,
                format!("header `{h}` is both expected and expected absent"),
                "keep one of the two",
            );
        }
    }
    if let Some(body) = &e.body {
        for t in [&body.equals, &body.contains].into_iter().flatten() {
            count += 1;
            c.template(t, declared);
        }
        if let Some(json) = &body.json {
            count += 1;
            c.json(json, declared);
        }
    }
    if let Some(token) = &e.token {
        count += 1 + token.claims.len();
        for t in token.claims.values() {
            c.template(t, declared);
        }
        if !matches!(action, Action::Token(_)) {
            c.report(
                e.status.as_ref().map(|s| s.at).unwrap_or(step_at),
                "`expect.token` applies to token steps",
                "a blob step checks the blob response; use a token step to check claims",
            );
        }
        if let Some(codes) = &statuses {
            if !codes.contains(&200) {
                c.report(
                    e.status.as_ref().map(|s| s.at).unwrap_or(step_at),
                    "`expect.token` requires a 200 response, but `status` excludes 200",
                    "a denied request carries no token: drop `token` or expect 200",
                );
            }
        }
        if let Some(range) = &token.expires_in {
            if let (Some(min), Some(max)) = (range.min, range.max) {
                if min > max {
                    c.report(
                        step_at,
                        format!("`expiresIn.min` ({min}) is above `max` ({max})"),
                        "swap them",
                    );
                }
            }
        }
    }
    if let Some(code) = &e.error_code {
        count += 1;
        c.template(code, declared);
        if !matches!(action, Action::Blob(_)) {
            c.report(
                code.at,
                "`errorCode` is the Blob storage `x-ms-error-code` and applies to blob steps",
                "for token steps check `status` and `body`",
            );
        }
        if let Some(codes) = &statuses {
            if codes.iter().all(|c| *c < 400) {
                c.report(
                    code.at,
                    "`errorCode` is expected together with a success status",
                    "Blob storage sends an error code only with 4xx/5xx statuses",
                );
            }
        }
    }
    if e.max_latency.is_some() {
        count += 1;
    }
    for r in &e.requests {
        count += 1;
        check_request(c, &r.value, declared);
    }
    if count == 0 {
        c.report(
            step_at,
            "`expect` is empty",
            "add at least one expectation, e.g. `status: 200`",
        );
    }
    count
}
