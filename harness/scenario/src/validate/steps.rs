//! Steps: exactly one action each, what the action names exists, and the step's `modes`,
//! `within` and `expect` fit the action.

use std::collections::HashSet;

use super::cloud::{check_machine_identity, check_role};
use super::expect::{check_expect, check_request};
use super::{Checker, Declared, hint_declared};
use crate::located::{Located, Position};
use crate::model::*;

/// Most identical requests one `token` step may send at once (per pod).
const MAX_CONCURRENT: u32 = 100;

/// Every action key, for hints.
const ACTIONS: &str = "token, blob, exec, apply, delete, patch, wait, sleep, cloud, stop, start, kill, restart, health";

/// Checks every step, and that the scenario as a whole can fail.
pub(super) fn check_steps(c: &mut Checker, s: &Scenario, declared: &Declared) {
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
        checks += check_step(c, step, s, declared);
    }
    if !s.steps.is_empty() && checks == 0 && c.problems.len() == before {
        c.report(
            s.steps[0].at,
            "no step has any expectation, so this scenario could never fail",
            "add `expect:` to a token or blob step (e.g. `status: 200`)",
        );
    }
}

/// Checks one step; returns how many expectations it carries.
fn check_step(c: &mut Checker, step: &Located<Step>, s: &Scenario, declared: &Declared) -> usize {
    let st = &step.value;
    let modes = step_modes(c, st, s);
    let actions = st.actions();
    let action = match actions.len() {
        1 => actions[0],
        0 => {
            c.report(
                step.at,
                "the step has no action",
                format!("give exactly one of: {ACTIONS}"),
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
    let mut checks = check_action(c, action, step.at, s, declared, &modes);
    for fault in &st.faults {
        super::faults::check_fault(c, fault, declared);
    }
    if let Some(within) = st.within {
        if within.0.is_zero() {
            c.report(
                step.at,
                "`within` must be longer than zero",
                "e.g. `within: 20s`",
            );
        } else if !repeats_action(action) && st.expect.is_none() {
            c.report(
                step.at,
                format!(
                    "`within` retries a {} step's expectations, and this step has none",
                    action.keyword()
                ),
                "add `expect`, or use `wait` with a `timeout` to wait for objects",
            );
        }
    }
    match &st.expect {
        Some(expect) => checks += check_expect(c, expect, action, declared, step.at),
        None if repeats_action(action) => {
            let example = if matches!(action, Action::Health(_)) {
                "add e.g. `expect: {status: 200, body: {equals: Active}}`"
            } else if matches!(action, Action::Exec(_)) {
                "add e.g. `expect: {exitCode: 0, stdout: {json: {ok: true}}}`"
            } else {
                "add e.g. `expect: {status: 200}`"
            };
            c.report(
                step.at,
                format!(
                    "this {} step has no `expect`, so it checks nothing",
                    action.keyword()
                ),
                example,
            );
        }
        None => {}
    }
    checks
}

/// Steps whose action is a request whose answer `expect` judges; `within` repeats the request.
/// Other steps act once; `within` there repeats only their expectations.
fn repeats_action(action: Action) -> bool {
    matches!(
        action,
        Action::Token(_) | Action::Blob(_) | Action::Exec(_) | Action::Health(_)
    )
}

/// The modes the step runs in: its own `modes` (each one of the scenario's), else the scenario's.
fn step_modes(c: &mut Checker, st: &Step, s: &Scenario) -> Vec<NmiMode> {
    let scenario_modes: Vec<NmiMode> = s.modes.iter().map(|m| m.value).collect();
    let mut seen = HashSet::new();
    for m in &st.modes {
        if !seen.insert(m.value) {
            c.report(
                m.at,
                format!("mode `{}` is listed twice", m.value.as_str()),
                "list each mode once",
            );
        } else if !scenario_modes.contains(&m.value) {
            let listed: Vec<&str> = scenario_modes.iter().map(|m| m.as_str()).collect();
            c.report(
                m.at,
                format!(
                    "the step runs in mode `{}`, which the scenario does not",
                    m.value.as_str()
                ),
                format!(
                    "the scenario's `modes` are: {}; a step's `modes` picks among them",
                    listed.join(", ")
                ),
            );
        }
    }
    if st.modes.is_empty() {
        scenario_modes
    } else {
        st.modes.iter().map(|m| m.value).collect()
    }
}

/// Checks what the action names and asks for; returns how many checks the action itself makes
/// (a `wait` on requests, fields or a count fails the trial when it does not happen).
fn check_action(
    c: &mut Checker,
    action: Action,
    step_at: Position,
    s: &Scenario,
    declared: &Declared,
    modes: &[NmiMode],
) -> usize {
    match action {
        Action::Token(t) => check_token(c, t, declared),
        Action::Blob(b) => check_blob(c, b, step_at, s, declared),
        Action::Exec(x) => check_exec(c, x, step_at, declared),
        Action::Apply(cl) => {
            if cl.is_empty() {
                c.report(
                    step_at,
                    "`apply` holds no objects",
                    "give objects as under `cluster`",
                );
            }
            super::cluster::check_cluster(c, cl, &s.cloud, declared);
        }
        Action::Delete(r) => {
            c.object_namespace(Some(r.kind.value), &r.namespace, declared);
            c.template(&r.name, declared);
        }
        Action::Patch(p) => {
            c.object_namespace(Some(p.kind.value), &p.namespace, declared);
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
        Action::Wait(w) => return check_wait(c, w, step_at, declared),
        Action::Sleep(_) => {}
        Action::Cloud(cs) => check_cloud_step(c, cs, step_at, s, declared),
        Action::Lifecycle(_, target) | Action::Health(target) => check_target(c, target, s, modes),
    }
    0
}

/// The pod a request or command comes from: declared, and with a network of its own.
fn pod_exists(c: &mut Checker, pod: &Name, declared: &Declared) {
    if !declared.pod_or_group(pod.as_str()) {
        c.report(
            pod.at,
            format!("pod `{pod}` is not declared"),
            declared.pods_hint(),
        );
    } else if let Some(owner) = declared
        .single_pods
        .get(pod.as_str())
        .and_then(|p| p.ip_of.as_ref())
    {
        c.report(
            pod.at,
            format!("pod `{pod}` has no network of its own: it only reports `{owner}`'s IP"),
            format!(
                "send from `{owner}`, or from another pod with `sourceAddress: ${{pods.{pod}.ip}}`"
            ),
        );
    }
}

/// A `token` step's request: where it goes, where it comes from, and its headers.
fn check_token(c: &mut Checker, t: &TokenStep, declared: &Declared) {
    pod_exists(c, &t.pod, declared);
    for tpl in t
        .identity()
        .templates()
        .chain(t.resource.iter())
        .chain(t.api_version.iter())
        .chain(t.path.iter())
        .chain(t.headers.values().flat_map(HeaderValue::values))
        .chain(t.query.values())
        .chain(t.endpoint.iter())
        .chain(t.source_address.iter())
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
    if let Some(n) = &t.concurrent {
        if !(1..=MAX_CONCURRENT).contains(&n.value) {
            c.report(
                n.at,
                format!(
                    "`concurrent` sends 1 to {MAX_CONCURRENT} requests at once, not {}",
                    n.value
                ),
                "leave it out for one request; for more pods declare a pod group with `replicas`",
            );
        }
    }
    if let Some(endpoint) = &t.endpoint {
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        match rest {
            None | Some("") => c.report(
                endpoint.at,
                format!("endpoint `{}` is not an http(s) base URL", endpoint.value),
                "write scheme, host and port only, e.g. `http://${nodes.node-0.ip}:8085`; the request path goes in `path`",
            ),
            Some(rest) if rest.contains(['/', '?', '#']) => c.report(
                endpoint.at,
                format!("endpoint `{}` has more than a scheme, host and port", endpoint.value),
                "put the request path in `path` and query parameters in `query`",
            ),
            Some(_) => {}
        }
    }
    if let Some(source) = &t.source_address {
        if !source.contains("${") && source.parse::<std::net::Ipv4Addr>().is_err() {
            c.report(
                source.at,
                format!("`{}` is not an IPv4 address", source.value),
                "write an address such as `10.244.0.7`, or refer to a pod's: `${pods.<name>.ip}`",
            );
        }
    }
    for (name, value) in &t.headers {
        let at = value.values().next().map(|v| v.at);
        if name.is_empty() || !name.bytes().all(is_header_name_byte) {
            c.report(
                at.unwrap_or(t.pod.at),
                format!("`{name}` is not a header name"),
                "header names are letters, digits and `-`, e.g. `Metadata` or `X-Forwarded-For`",
            );
        }
        if let HeaderValue::Many(list) = value {
            if list.is_empty() {
                c.report(
                    t.pod.at,
                    format!("header `{name}` lists no values, so it would not be sent"),
                    "give at least one value, or drop the header",
                );
            }
        }
        if t.metadata_header && name.eq_ignore_ascii_case("Metadata") {
            c.report(
                at.unwrap_or(t.pod.at),
                "`headers` sends `Metadata` and so does `metadataHeader` (true by default)",
                "set `metadataHeader: false` and list every `Metadata` value in `headers`, e.g. `Metadata: [\"false\", \"true\"]`",
            );
        }
    }
}

/// RFC 9110 `tchar`s, the bytes a header name may hold.
fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An `exec` step runs one client (with `args`) or one raw `command` in one pod.
fn check_exec(c: &mut Checker, x: &ExecStep, step_at: Position, declared: &Declared) {
    if let Some(size) = declared.pod_groups.get(x.pod.as_str()) {
        c.report(
            x.pod.at,
            format!(
                "`exec` runs in one pod, and `{}` is a pod group",
                x.pod.value
            ),
            format!("name one member: {}", super::member_span(&x.pod, *size)),
        );
    } else {
        pod_exists(c, &x.pod, declared);
    }
    match (&x.client, x.command.first()) {
        (Some(client), Some(_)) => c.report(
            client.at,
            "an `exec` step runs a `client` or a `command`, not both",
            "keep `client` (with `args`) to run one of the project's SDK clients, or `command` for any program",
        ),
        (None, None) => c.report(
            step_at,
            "an `exec` step needs a `client` or a `command`",
            "e.g. `exec: {pod: app, client: python, args: [token, --resource, https://vault.azure.net]}` or `exec: {pod: app, command: [cat, /etc/hosts]}`",
        ),
        (None, Some(_)) => {
            if let Some(first) = x.args.first() {
                c.report(
                    first.at,
                    "`args` follow a `client`'s program; a `command` carries its own arguments",
                    "append the arguments to `command`, or run a `client`",
                );
            }
        }
        (Some(_), None) => {}
    }
    for tpl in x.command.iter().chain(&x.args).chain(x.env.values()) {
        c.template(tpl, declared);
    }
    for (name, value) in &x.env {
        if !is_env_name(name) {
            c.report(
                value.at,
                format!("`{name}` is not an environment variable name"),
                "use letters, digits and `_`, not starting with a digit, e.g. `AZURE_LOG_LEVEL`",
            );
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the names a shell can export.
fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check_blob(c: &mut Checker, b: &BlobStep, step_at: Position, s: &Scenario, declared: &Declared) {
    pod_exists(c, &b.pod, declared);
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
            step_at,
            format!("a blob `{}` needs `blob`", op_name(b.op)),
            "name the blob to read or write",
        ),
        BlobOp::Write if b.content.is_none() => c.report(
            step_at,
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

fn op_name(op: BlobOp) -> &'static str {
    match op {
        BlobOp::Read => "read",
        BlobOp::Write => "write",
        BlobOp::List => "list",
    }
}

/// A `wait` for one object (`kind` + `name`, optionally `fields`), for a number of objects
/// (`kind` + `count`, optionally `fields`), or for mock requests (`requests`). Returns how many
/// conditions it asserts beyond existence.
fn check_wait(c: &mut Checker, w: &WaitStep, step_at: Position, declared: &Declared) -> usize {
    let on_objects =
        w.kind.is_some() || w.name.is_some() || w.count.is_some() || !w.fields.is_empty();
    let on_requests = !w.requests.is_empty();
    if on_objects == on_requests {
        c.report(
            step_at,
            "a `wait` step waits either for objects or for mock requests",
            "give `kind` with `name` or `count` (and `fields`, `for`), or `requests`, but not both",
        );
        return 0;
    }
    if !on_objects {
        for r in &w.requests {
            check_request(c, &r.value, declared);
        }
        return w.requests.len();
    }
    c.object_namespace(w.kind.as_ref().map(|k| k.value), &w.namespace, declared);
    let Some(kind) = &w.kind else {
        c.report(
            step_at,
            "a `wait` on objects needs `kind`",
            "e.g. `wait: {kind: AzureAssignedIdentity, count: 1, fields: {status.status: Assigned}}`",
        );
        return 0;
    };
    match (&w.name, &w.count) {
        (Some(_), Some(count)) => c.report(
            count.at,
            "`count` counts every object of the kind, so it cannot go with `name`",
            "drop `name` to count objects, or drop `count` to wait for the named one",
        ),
        (None, None) => c.report(
            kind.at,
            "a `wait` on a kind needs `name` (one object) or `count` (how many)",
            "e.g. `name: app` or `count: 0`",
        ),
        _ => {}
    }
    if w.condition == WaitFor::Deleted {
        if let Some(count) = &w.count {
            c.report(
                count.at,
                "`count` waits for a number of objects to exist, so `for: deleted` does not apply",
                "to wait until none are left, write `count: 0` without `for`",
            );
        }
        if let Some(first) = w.fields.values().next() {
            c.report(
                first.at,
                "`fields` with `for: deleted` is contradictory: a deleted object has no fields",
                "drop `fields`, or wait for the object to exist with them",
            );
        }
    }
    if let Some(name) = &w.name {
        c.template(name, declared);
    }
    c.fields(&w.fields, declared);
    w.fields.len() + usize::from(w.count.is_some())
}

/// A `cloud` step makes exactly one change, to declared identities, principals and nodes.
fn check_cloud_step(
    c: &mut Checker,
    cs: &CloudStep,
    step_at: Position,
    s: &Scenario,
    declared: &Declared,
) {
    let changes: Vec<&str> = [
        ("assign", cs.assign.is_some()),
        ("unassign", cs.unassign.is_some()),
        ("enableSystemAssigned", cs.enable_system_assigned.is_some()),
        ("addRole", cs.add_role.is_some()),
        ("removeRole", cs.remove_role.is_some()),
        ("deleteIdentity", cs.delete_identity.is_some()),
        ("recreateIdentity", cs.recreate_identity.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, given)| given.then_some(key))
    .collect();
    match changes.len() {
        0 => c.report(
            step_at,
            "the `cloud` step makes no change",
            "give one of: assign, unassign, enableSystemAssigned, addRole, removeRole, deleteIdentity, recreateIdentity",
        ),
        1 => {}
        _ => c.report(
            step_at,
            format!(
                "the `cloud` step makes several changes: {}",
                changes.join(", ")
            ),
            "make one change per step, in the order they should happen",
        ),
    }
    for change in [&cs.assign, &cs.unassign].into_iter().flatten() {
        check_machine_identity(c, &change.identity, declared);
        c.node(&change.node);
    }
    if let Some(node) = &cs.enable_system_assigned {
        c.node(node);
    }
    for role in [&cs.add_role, &cs.remove_role].into_iter().flatten() {
        check_role(c, &role.value, &s.cloud, declared, true);
    }
    for id in [&cs.delete_identity, &cs.recreate_identity]
        .into_iter()
        .flatten()
    {
        if id.as_str() == CLUSTER_IDENTITY && !declared.identities.contains(CLUSTER_IDENTITY) {
            c.report(
                id.at,
                "the cluster identity belongs to the provider and cannot be deleted or recreated",
                "declare an identity under `cloud.identities` and delete or recreate that one",
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

/// The component a lifecycle or `health` step addresses: `node` only for NMI, `replica` only
/// for MIC, and MIC only where it runs.
fn check_target(c: &mut Checker, t: &ComponentTarget, s: &Scenario, modes: &[NmiMode]) {
    let component = t.component.value;
    let name = component_name(component);
    if let Some(node) = &t.node {
        if component == Component::Nmi {
            c.node(node);
        } else {
            c.report(
                node.at,
                format!("`node` picks one NMI, and {name} does not run per node"),
                "drop `node`, or address `component: nmi`",
            );
        }
    }
    if let Some(replica) = &t.replica {
        if component != Component::Mic {
            c.report(
                replica.at,
                format!("`replica` picks one MIC replica, and {name} has no replicas"),
                "drop `replica`, or address `component: mic`",
            );
        } else if replica.value == MicReplica::Follower && s.mic.replica_count() != 2 {
            c.report(
                replica.at,
                "`replica: follower` needs a second MIC replica",
                "set `mic: {replicas: 2}`; a single MIC is always the leader",
            );
        }
    }
    if component == Component::Mic && modes.contains(&NmiMode::Managed) {
        let hint = if s.modes.iter().any(|m| m.value == NmiMode::Standard) {
            "give the step `modes: [standard]`, or run the scenario in standard mode only"
        } else {
            "MIC runs only in standard mode: add `standard` to the scenario's `modes` and give the step `modes: [standard]`"
        };
        c.report(
            t.component.at,
            "this step addresses MIC but also runs in managed mode, where MIC does not run",
            hint,
        );
    }
}

fn component_name(component: Component) -> &'static str {
    match component {
        Component::Nmi => "NMI",
        Component::Mic => "MIC",
        Component::Apiserver => "the API server",
    }
}
