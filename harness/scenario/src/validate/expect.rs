//! `expect`: response checks fit the step's action, state checks (objects, node identities,
//! iptables, cloud requests) name what exists, and no check contradicts another.

use std::collections::HashSet;

use super::cloud::check_machine_identity;
use super::{Checker, Declared};
use crate::located::{Located, Position};
use crate::model::*;

/// What answer, if any, a step's action gives for `expect` to judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// NMI's (or IMDS's) HTTP answer to a token request.
    Token,
    /// Blob storage's HTTP answer.
    Blob,
    /// Every addressed component's `/healthz` answer.
    Health,
    /// A command's exit code, standard output and standard error.
    Exec,
    /// No answer: the step acts on the cluster or the cloud.
    None,
}

impl Answer {
    fn of(action: Action) -> Self {
        match action {
            Action::Token(_) => Answer::Token,
            Action::Blob(_) => Answer::Blob,
            Action::Health(_) => Answer::Health,
            Action::Exec(_) => Answer::Exec,
            _ => Answer::None,
        }
    }
}

/// Checks a step's expectations; returns how many there are.
pub(super) fn check_expect(
    c: &mut Checker,
    e: &Expect,
    action: Action,
    declared: &Declared,
    step_at: Position,
) -> usize {
    let answer = Answer::of(action);
    let mut count = check_response(c, e, action, answer, declared, step_at);
    for r in &e.requests {
        count += 1;
        check_request(c, &r.value, declared);
    }
    for o in &e.objects {
        count += 1;
        check_object(c, o, declared);
    }
    for (node, machine) in &e.node_identities {
        count += check_machine(c, node, machine, declared);
    }
    for node in e.iptables.keys() {
        count += 1;
        c.node(node);
    }
    if count == 0 {
        c.report(
            step_at,
            "`expect` is empty",
            "add at least one expectation, e.g. `status: 200`",
        );
    }
    if answer == Answer::Health && e.status.is_none() && e.body.is_none() {
        c.report(
            step_at,
            "a health step must say what every answer is: give `status` or `body`",
            "e.g. `expect: {status: 200, body: {equals: Active}}` (a MIC follower answers `Not Active`)",
        );
    }
    count
}

/// The checks on the action's answer (status, headers, body, token, error code, latency);
/// returns how many there are.
fn check_response(
    c: &mut Checker,
    e: &Expect,
    action: Action,
    answer: Answer,
    declared: &Declared,
    step_at: Position,
) -> usize {
    let status_at = e.status.as_ref().map(|s| s.at).unwrap_or(step_at);
    let mut given: Vec<&str> = Vec::new();
    let mut count = 0;
    if let Some(status) = &e.status {
        given.push("status");
        count += 1;
        check_status_codes(c, status);
    }
    let statuses = e.status.as_ref().map(|s| s.value.codes());
    if !e.headers.is_empty() {
        given.push("headers");
    }
    if !e.absent_headers.is_empty() {
        given.push("absentHeaders");
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
        given.push("body");
        count += check_body(c, body, declared);
    }
    if let Some(token) = &e.token {
        given.push("token");
        count += 1 + token.claims.len();
        for t in token.claims.values() {
            c.template(t, declared);
        }
        if answer == Answer::Blob {
            c.report(
                status_at,
                "`expect.token` applies to token steps",
                "a blob step checks the blob response; use a token step to check claims",
            );
        }
        if let Some(codes) = &statuses {
            if !codes.contains(&200) {
                c.report(
                    status_at,
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
        given.push("errorCode");
        count += 1;
        c.template(code, declared);
        if answer == Answer::Token {
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
    // `maxLatency` and `minLatency` bound how long any action took, so they fit every step.
    count += usize::from(e.max_latency.is_some()) + usize::from(e.min_latency.is_some());
    if let (Some(min), Some(max)) = (e.min_latency, e.max_latency) {
        if min > max {
            c.report(
                step_at,
                format!("`minLatency` ({min}) is above `maxLatency` ({max})"),
                "no action can take that long and that short at once: swap them",
            );
        }
    }
    if let Some(answered) = &e.answered {
        count += 1;
        check_answered(c, answered, answer, action, &given);
    }
    let (output, output_count) = check_output(c, e, declared);
    count += output_count;
    if answer != Answer::Exec && !output.is_empty() {
        let at = e.exit_code.as_ref().map_or(step_at, |code| code.at);
        c.report(
            at,
            format!(
                "{} {} a command's result, and {} step runs no command",
                quoted(&output),
                if output.len() == 1 { "checks" } else { "check" },
                a_step(action)
            ),
            "exit codes and output come from `exec` steps; run the client or command in an `exec` step",
        );
    }
    match answer {
        Answer::Token | Answer::Blob => {}
        Answer::Exec if !given.is_empty() => c.report(
            status_at,
            format!(
                "{} {} an HTTP answer, and an exec step's result is an exit code and output",
                quoted(&given),
                if given.len() == 1 { "checks" } else { "check" },
            ),
            "check `exitCode`, `stdout` and `stderr`; the clients print one JSON line, e.g. `stdout: {json: {ok: false, error: {status: 403}}}`",
        ),
        Answer::Exec => {}
        Answer::Health => {
            let beyond: Vec<&str> = given
                .iter()
                .copied()
                .filter(|k| !matches!(*k, "status" | "body"))
                .collect();
            if !beyond.is_empty() {
                c.report(
                    status_at,
                    format!(
                        "a health answer is checked by `status` and `body`, not by {}",
                        quoted(&beyond)
                    ),
                    "drop them; `/healthz` answers carry a status and a body (`Active` or `Not Active`)",
                );
            }
        }
        Answer::None if !given.is_empty() => c.report(
            status_at,
            format!(
                "{} {} an answer, and {} step gets none",
                quoted(&given),
                if given.len() == 1 { "checks" } else { "check" },
                a_step(action)
            ),
            "answers come from token, blob and health steps (exec steps check `exitCode`, `stdout` and `stderr`); other steps may expect `objects`, `nodeIdentities`, `iptables`, `requests`, `maxLatency` and `minLatency`",
        ),
        Answer::None => {}
    }
    count
}

/// `answered` says whether a token or blob request gets an HTTP answer at all; with `false`
/// there is no answer for the answer checks to judge.
fn check_answered(
    c: &mut Checker,
    answered: &Located<bool>,
    answer: Answer,
    action: Action,
    given: &[&str],
) {
    if !matches!(answer, Answer::Token | Answer::Blob) {
        c.report(
            answered.at,
            format!(
                "`answered` says whether a token or blob request gets an HTTP answer, and this is {} step",
                a_step(action)
            ),
            "drop `answered`; exec steps check `exitCode`, health steps `status` and `body`",
        );
    } else if !answered.value && !given.is_empty() {
        c.report(
            answered.at,
            format!(
                "`answered: false` expects no answer at all, so {} cannot hold",
                quoted(given)
            ),
            "drop the answer checks, or drop `answered: false` to check the answer",
        );
    }
}

/// The checks of one body (or output) expectation; returns how many there are.
fn check_body(c: &mut Checker, body: &BodyExpect, declared: &Declared) -> usize {
    let mut count = 0;
    for t in [&body.equals, &body.contains].into_iter().flatten() {
        count += 1;
        c.template(t, declared);
    }
    if let Some(json) = &body.json {
        count += 1;
        c.json(json, declared);
    }
    count
}

/// The checks on a command's result (`exitCode`, `stdout`, `stderr`): which keys are given and
/// how many checks they make.
fn check_output<'e>(c: &mut Checker, e: &'e Expect, declared: &Declared) -> (Vec<&'e str>, usize) {
    let mut keys = Vec::new();
    let mut count = 0;
    if let Some(code) = &e.exit_code {
        keys.push("exitCode");
        count += 1;
        if !(0..=255).contains(&code.value) {
            c.report(
                code.at,
                format!("{} is not an exit code", code.value),
                "exit codes are 0 to 255: 0 for success; the clients exit 1 on an SDK error and 2 on misuse",
            );
        }
    }
    for (key, output) in [("stdout", &e.stdout), ("stderr", &e.stderr)] {
        if let Some(output) = output {
            keys.push(key);
            count += check_body(c, output, declared);
        }
    }
    (keys, count)
}

/// `a token`, `an exec`: the action's keyword with its article.
fn a_step(action: Action) -> String {
    let keyword = action.keyword();
    let article = if keyword.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {keyword}")
}

/// `` `status`, `body` ``.
fn quoted(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one mock-request expectation (of `expect.requests` or a `wait` step).
/// A `status` (of an answer or of counted requests) names real HTTP codes.
fn check_status_codes(c: &mut Checker, status: &Located<StatusExpect>) {
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

pub(super) fn check_request(c: &mut Checker, rv: &RequestExpect, declared: &Declared) {
    if let Some(status) = &rv.status {
        check_status_codes(c, status);
    }
    if let Some(node) = &rv.node {
        if rv.service != Service::Imds {
            c.report(
                node.at,
                "`node` only applies to `service: imds` (each node has its own IMDS)",
                "drop `node` or use `service: imds`",
            );
        }
        c.node(node);
    }
    for t in [&rv.client_id, &rv.path].into_iter().flatten() {
        c.template(t, declared);
    }
}

/// One `expect.objects` entry: a named object (with fields, or absent) or a count.
fn check_object(c: &mut Checker, o: &Located<ObjectExpect>, declared: &Declared) {
    let ov = &o.value;
    c.object_namespace(Some(ov.kind.value), &ov.namespace, declared);
    match (&ov.name, &ov.count) {
        (Some(_), Some(count)) => c.report(
            count.at,
            "an object check has `name` or `count`, not both",
            "`name` checks one object; `count` counts the objects of the kind that match `fields`",
        ),
        (None, None) => c.report(
            o.at,
            "an object check needs `name` (one object) or `count` (how many)",
            "e.g. `{kind: AzureAssignedIdentity, count: 1}` or `{kind: Pod, name: app, absent: true}`",
        ),
        _ => {}
    }
    if ov.absent {
        if ov.name.is_none() {
            c.report(
                o.at,
                "`absent` applies to a named object",
                "give `name`; to expect no objects of a kind write `count: 0`",
            );
        }
        if !ov.fields.is_empty() {
            c.report(
                o.at,
                "`absent` with `fields` is contradictory: an absent object has no fields",
                "drop `fields`, or drop `absent` to check the object's fields",
            );
        }
    }
    if let Some(name) = &ov.name {
        c.template(name, declared);
    }
    c.fields(&ov.fields, declared);
}

/// One node of `expect.nodeIdentities`; returns how many checks it makes.
fn check_machine(c: &mut Checker, node: &Name, m: &MachineExpect, declared: &Declared) -> usize {
    c.node(node);
    for id in m.has.iter().chain(&m.lacks) {
        check_machine_identity(c, id, declared);
    }
    let has: HashSet<&str> = m.has.iter().map(|n| n.as_str()).collect();
    for id in &m.lacks {
        if has.contains(id.as_str()) {
            c.report(
                id.at,
                format!("`{id}` is in both `has` and `lacks` of {node}"),
                "keep it in one of the two",
            );
        }
    }
    let checks = m.has.len() + m.lacks.len() + usize::from(m.system_assigned.is_some());
    if checks == 0 {
        c.report(
            node.at,
            format!("the expectation on {node}'s identities checks nothing"),
            "give `has`, `lacks` or `systemAssigned`",
        );
    }
    checks
}
