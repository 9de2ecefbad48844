//! Checking a step's expectations against what the probe saw and what the cloud received.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podid_probe::HttpExchange;
use podid_reports::Failure;
use podid_scenario::reference::{self, Resolve};
use podid_scenario::{BodyExpect, Expect, Located, RequestExpect};
use serde_json::Value;

use crate::jwt;
use crate::provider::cloud::service_name;
use crate::provider::{CloudRequest, ExecOutput};

/// Everything an expectation may look at.
pub struct Observed<'a> {
    /// The response the step is about (the token answer, or the storage answer).
    pub response: Option<&'a HttpExchange>,
    /// Why there is no response, when there is none.
    pub missing_reason: Option<String>,
    pub elapsed: Duration,
    /// Requests the cloud received while the step ran (empty without a request log).
    pub requests: &'a [CloudRequest],
    /// Requests the cloud received since the trial began (setup included).
    pub trial_requests: &'a [CloudRequest],
    /// The JWKS that verifies the cloud's tokens (needed by `token` expectations).
    pub signing_keys: Option<&'a Value>,
}

fn failure(
    expectation: &str,
    expected: impl Into<String>,
    actual: impl Into<String>,
    message: impl Into<String>,
) -> Failure {
    Failure {
        expectation: expectation.to_string(),
        expected: expected.into(),
        actual: actual.into(),
        message: message.into(),
    }
}

fn render(
    t: &str,
    resolver: &dyn Resolve,
    failures: &mut Vec<Failure>,
    what: &str,
) -> Option<String> {
    match reference::render(t, resolver) {
        Ok(v) => Some(v),
        Err(e) => {
            failures.push(failure(what, t, "", format!("cannot resolve: {e}")));
            None
        }
    }
}

fn show_body(body: &str) -> String {
    const MAX: usize = 2000;
    if body.len() > MAX {
        let mut end = MAX;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &body[..end], body.len())
    } else {
        body.to_string()
    }
}

/// Every failed expectation (empty when all hold).
pub fn check(expect: &Expect, observed: &Observed, resolver: &dyn Resolve) -> Vec<Failure> {
    let mut failures = check_answer(expect, observed, resolver);
    failures.extend(check_requests(
        &expect.requests,
        observed.requests,
        observed.trial_requests,
        resolver,
    ));
    failures
}

/// The failed expectations on one answer: status, headers, body, token, error code and
/// latency (`observed.requests` is not looked at).
pub fn check_answer(expect: &Expect, observed: &Observed, resolver: &dyn Resolve) -> Vec<Failure> {
    let mut failures = Vec::new();
    let needs_response = expect.status.is_some()
        || !expect.headers.is_empty()
        || !expect.absent_headers.is_empty()
        || expect.body.is_some()
        || expect.token.is_some()
        || expect.error_code.is_some();
    let response = match observed.response {
        Some(r) if r.status.is_some() => Some(r),
        other => {
            if needs_response {
                let why = other
                    .and_then(|r| r.error.clone())
                    .or_else(|| observed.missing_reason.clone())
                    .unwrap_or_else(|| "no response".to_string());
                failures.push(failure(
                    "response",
                    "an HTTP response",
                    why.clone(),
                    format!("no response to check: {why}"),
                ));
            }
            None
        }
    };

    if let Some(r) = response {
        let status = r.status.unwrap_or_default();
        if let Some(expected) = &expect.status {
            if !expected.value.accepts(status) {
                let want = expected
                    .value
                    .codes()
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ");
                failures.push(failure(
                    "status",
                    want.clone(),
                    format!("{status}, body: {}", show_body(&r.body)),
                    format!("status {status}, expected {want}"),
                ));
            }
        }
        for (name, value) in &expect.headers {
            let Some(want) = render(value, resolver, &mut failures, "headers") else {
                continue;
            };
            match r.header(name) {
                Some(got) if got == want => {}
                Some(got) => failures.push(failure(
                    &format!("headers.{name}"),
                    want.clone(),
                    got,
                    format!("header {name} is `{got}`, expected `{want}`"),
                )),
                None => failures.push(failure(
                    &format!("headers.{name}"),
                    want,
                    "(absent)",
                    format!("header {name} is missing"),
                )),
            }
        }
        for name in &expect.absent_headers {
            if let Some(got) = r.header(name) {
                failures.push(failure(
                    &format!("headers.{name}"),
                    "(absent)",
                    got,
                    format!("header {name} is present"),
                ));
            }
        }
        if let Some(body) = &expect.body {
            check_text("body", body, &r.body, resolver, &mut failures);
        }
        if let Some(code) = expect
            .error_code
            .as_ref()
            .and_then(|t| render(t, resolver, &mut failures, "errorCode"))
        {
            let got = r.header("x-ms-error-code").unwrap_or("(none)");
            if got != code {
                failures.push(failure(
                    "errorCode",
                    code.clone(),
                    got,
                    format!("x-ms-error-code is `{got}`, expected `{code}`"),
                ));
            }
        }
        if let Some(token) = &expect.token {
            check_token(token, r, observed.signing_keys, resolver, &mut failures);
        }
    }

    failures.extend(check_latency(expect, observed.elapsed));
    failures
}

/// A text (a body, a command's output) against `equals`, `contains` and `json` (a subset);
/// `name` says which text in the failures.
fn check_text(
    name: &str,
    expected: &BodyExpect,
    text: &str,
    resolver: &dyn Resolve,
    failures: &mut Vec<Failure>,
) {
    let what = |check: &str| format!("{name}.{check}");
    if let Some(want) = expected
        .equals
        .as_ref()
        .and_then(|t| render(t, resolver, failures, &what("equals")))
    {
        if text != want {
            failures.push(failure(
                &what("equals"),
                format!("{want:?}"),
                format!("{:?}", show_body(text)),
                format!("{name} differs"),
            ));
        }
    }
    if let Some(want) = expected
        .contains
        .as_ref()
        .and_then(|t| render(t, resolver, failures, &what("contains")))
    {
        if !text.contains(&want) {
            failures.push(failure(
                &what("contains"),
                format!("{want:?}"),
                format!("{:?}", show_body(text)),
                format!("{name} does not contain the text"),
            ));
        }
    }
    if let Some(json) = &expected.json {
        match reference::render_json(&json.value, resolver) {
            Err(e) => failures.push(failure(
                &what("json"),
                json.value.to_string(),
                "",
                format!("cannot resolve: {e}"),
            )),
            Ok(want) => match json_of(text) {
                Err(e) => failures.push(failure(
                    &what("json"),
                    want.to_string(),
                    show_body(text),
                    format!("{name} is not JSON: {e}"),
                )),
                Ok(got) => {
                    if let Some(path) = subset_mismatch(&want, &got, "") {
                        failures.push(failure(
                            &what("json"),
                            want.to_string(),
                            got.to_string(),
                            format!("{name} differs at `{path}`"),
                        ));
                    }
                }
            },
        }
    }
}

/// The JSON of a text: the whole text, else its last line that is a JSON value (a command
/// may print other lines before its result).
fn json_of(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text).or_else(|whole| {
        text.lines()
            .rev()
            .map(str::trim)
            .filter(|l| l.starts_with('{') || l.starts_with('['))
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or(whole)
    })
}

/// The failed expectations on a command run in a pod: exit code, stdout, stderr and latency.
pub fn check_exec(
    expect: &Expect,
    output: &ExecOutput,
    elapsed: Duration,
    resolver: &dyn Resolve,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    if output.timed_out {
        failures.push(failure(
            "exec",
            "the command ends",
            format!("killed after {}ms", elapsed.as_millis()),
            "the command ran past its time and was killed",
        ));
    }
    if let Some(code) = &expect.exit_code {
        if output.exit_code != Some(code.value) {
            let got = output
                .exit_code
                .map_or_else(|| "none (killed)".to_string(), |c| c.to_string());
            failures.push(failure(
                "exitCode",
                code.value.to_string(),
                format!("{got}; stderr: {}", show_body(output.stderr.trim())),
                format!("exit code {got}, expected {}", code.value),
            ));
        }
    }
    if let Some(stdout) = &expect.stdout {
        check_text("stdout", stdout, &output.stdout, resolver, &mut failures);
    }
    if let Some(stderr) = &expect.stderr {
        check_text("stderr", stderr, &output.stderr, resolver, &mut failures);
    }
    failures.extend(check_latency(expect, elapsed));
    failures
}

/// `maxLatency` and `minLatency` against how long the action (or one answer) took.
pub fn check_latency(expect: &Expect, elapsed: Duration) -> Vec<Failure> {
    let mut failures = Vec::new();
    if let Some(max) = expect.max_latency.filter(|max| elapsed > max.0) {
        failures.push(failure(
            "maxLatency",
            max.to_string(),
            format!("{}ms", elapsed.as_millis()),
            "the step took too long",
        ));
    }
    if let Some(min) = expect.min_latency.filter(|min| elapsed < min.0) {
        failures.push(failure(
            "minLatency",
            min.to_string(),
            format!("{}ms", elapsed.as_millis()),
            "the step ended sooner than it must (nothing waited)",
        ));
    }
    failures
}

/// The failed `requests` expectations, counted in `requests` (the step's window) or
/// `trial_requests` (since the trial began) as each says.
pub fn check_requests(
    expected: &[Located<RequestExpect>],
    requests: &[CloudRequest],
    trial_requests: &[CloudRequest],
    resolver: &dyn Resolve,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    for req in expected {
        check_request(
            &req.value,
            requests,
            trial_requests,
            resolver,
            &mut failures,
        );
    }
    failures
}

fn check_token(
    token: &podid_scenario::TokenExpect,
    r: &HttpExchange,
    signing_keys: Option<&Value>,
    resolver: &dyn Resolve,
    failures: &mut Vec<Failure>,
) {
    let body: Value = match serde_json::from_str(&r.body) {
        Ok(v) => v,
        Err(e) => {
            failures.push(failure(
                "token",
                "a JSON token response",
                show_body(&r.body),
                format!("the answer is not JSON: {e}"),
            ));
            return;
        }
    };
    let Some(obj) = body.as_object() else {
        failures.push(failure(
            "token",
            "a JSON object",
            show_body(&r.body),
            "the answer is not a JSON object",
        ));
        return;
    };
    for (k, v) in obj {
        if !v.is_string() {
            failures.push(failure(
                &format!("token.{k}"),
                "a string",
                v.to_string(),
                format!("field `{k}` is not a string (NMI and IMDS send every field as a string)"),
            ));
        }
    }
    for field in ["access_token", "expires_on", "resource", "token_type"] {
        if !obj.contains_key(field) {
            failures.push(failure(
                &format!("token.{field}"),
                "present",
                "(absent)",
                format!("field `{field}` is missing"),
            ));
        }
    }
    let Some(access_token) = obj.get("access_token").and_then(|v| v.as_str()) else {
        return;
    };
    let Some(jwks) = signing_keys else {
        failures.push(failure(
            "token.access_token",
            "a JWT verified against the cloud's signing keys",
            "(no signing keys)",
            "the cloud's signing keys could not be read",
        ));
        return;
    };
    let claims = match jwt::verify(access_token, jwks) {
        Ok(c) => c,
        Err(e) => {
            failures.push(failure(
                "token.access_token",
                "a JWT signed by the cloud's key",
                "[REDACTED-JWT]",
                e,
            ));
            return;
        }
    };
    for (name, value) in &token.claims {
        let Some(want) = render(value, resolver, failures, &format!("token.claims.{name}")) else {
            continue;
        };
        match claims.get(name) {
            Some(Value::String(got)) if *got == want => {}
            Some(got) => failures.push(failure(
                &format!("token.claims.{name}"),
                want.clone(),
                got.to_string(),
                format!("claim `{name}` differs"),
            )),
            None => failures.push(failure(
                &format!("token.claims.{name}"),
                want,
                "(absent)",
                format!("claim `{name}` is missing"),
            )),
        }
    }
    if let Some(range) = &token.expires_in {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        match claims.get("exp").and_then(|e| e.as_i64()) {
            None => failures.push(failure(
                "token.expiresIn",
                "an exp claim",
                "(absent)",
                "the token has no exp",
            )),
            Some(exp) => {
                let left = exp - now;
                let min = range.min.map(|d| d.0.as_secs() as i64);
                let max = range.max.map(|d| d.0.as_secs() as i64);
                if min.is_some_and(|m| left < m) || max.is_some_and(|m| left > m) {
                    let want = format!(
                        "between {} and {}",
                        range
                            .min
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "now".into()),
                        range
                            .max
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "any time".into())
                    );
                    failures.push(failure(
                        "token.expiresIn",
                        want,
                        format!("{left}s"),
                        "the token expires outside the expected window",
                    ));
                }
            }
        }
    }
    if let Some(expires_on) = obj.get("expires_on").and_then(|v| v.as_str()) {
        if let (Ok(on), Some(exp)) = (
            expires_on.parse::<i64>(),
            claims.get("exp").and_then(|e| e.as_i64()),
        ) {
            if on != exp {
                failures.push(failure(
                    "token.expires_on",
                    exp.to_string(),
                    on.to_string(),
                    "expires_on does not match the JWT's exp",
                ));
            }
        }
    }
}

/// A `requests` expectation with its references resolved.
struct RequestMatcher {
    service: podid_scenario::Service,
    node: Option<String>,
    method: Option<String>,
    path_prefix: Option<String>,
    client_id: Option<String>,
    status: Option<podid_scenario::StatusExpect>,
}

impl RequestMatcher {
    /// Service and node exactly; method, path prefix and client id case-insensitively.
    fn matches(&self, r: &CloudRequest) -> bool {
        let same = |want: &Option<String>, got: Option<&str>| {
            want.as_ref()
                .is_none_or(|w| got.is_some_and(|g| g.eq_ignore_ascii_case(w)))
        };
        r.service == self.service
            && self
                .node
                .as_ref()
                .is_none_or(|n| r.node.as_ref() == Some(n))
            && same(&self.method, Some(&r.method))
            && same(&self.client_id, r.client_id.as_deref())
            && self.status.as_ref().is_none_or(|s| s.accepts(r.status))
            && self.path_prefix.as_ref().is_none_or(|p| {
                r.path
                    .to_ascii_lowercase()
                    .starts_with(&p.to_ascii_lowercase())
            })
    }

    fn describe(&self, since: podid_scenario::RequestWindow) -> String {
        let mut parts = vec![format!("to {}", service_name(self.service))];
        if let Some(n) = &self.node {
            parts.push(format!("on {n}"));
        }
        if let Some(c) = &self.client_id {
            parts.push(format!("for client_id {c}"));
        }
        if let Some(p) = &self.path_prefix {
            parts.push(format!("under {p}"));
        }
        if let Some(m) = &self.method {
            parts.push(format!("with method {m}"));
        }
        if let Some(s) = &self.status {
            let codes: Vec<String> = s.codes().iter().map(u16::to_string).collect();
            parts.push(format!("answered {}", codes.join(" or ")));
        }
        if since == podid_scenario::RequestWindow::Trial {
            parts.push("since the trial began".into());
        }
        parts.join(" ")
    }
}

fn check_request(
    req: &podid_scenario::RequestExpect,
    requests: &[CloudRequest],
    trial_requests: &[CloudRequest],
    resolver: &dyn Resolve,
    failures: &mut Vec<Failure>,
) {
    let matcher = RequestMatcher {
        service: req.service,
        node: req.node.as_ref().map(|n| n.value.clone()),
        method: req.method.clone(),
        status: req.status.as_ref().map(|s| s.value.clone()),
        client_id: req
            .client_id
            .as_ref()
            .and_then(|c| render(c, resolver, failures, "requests.clientId")),
        path_prefix: req
            .path
            .as_ref()
            .and_then(|p| render(p, resolver, failures, "requests.path")),
    };
    let window = match req.since {
        podid_scenario::RequestWindow::Attempt => requests,
        podid_scenario::RequestWindow::Trial => trial_requests,
    };
    let matching: Vec<&CloudRequest> = window.iter().filter(|r| matcher.matches(r)).collect();
    let ok = match req.count {
        Some(n) => matching.len() == n as usize,
        None => !matching.is_empty(),
    };
    if !ok {
        let describe = matcher.describe(req.since);
        let want = match req.count {
            Some(n) => format!("{n} request(s) {describe}"),
            None => format!("at least one request {describe}"),
        };
        let seen: Vec<String> = matching
            .iter()
            .map(|r| {
                let client = r
                    .client_id
                    .as_ref()
                    .map(|c| format!(" (client_id {c})"))
                    .unwrap_or_default();
                let place = r.node.as_deref().unwrap_or(service_name(r.service));
                format!("{place} {} {}{client} -> {}", r.method, r.path, r.status)
            })
            .collect();
        let service = service_name(req.service);
        failures.push(failure(
            &format!("requests.{service}"),
            want,
            format!("{} matching: [{}]", matching.len(), seen.join(", ")),
            format!(
                "the cloud's {service} received {} matching request(s)",
                matching.len()
            ),
        ));
    }
}

/// The first path at which `want` is not a subset of `got` (objects: keys recursively; other
/// values: equality), or `None` when it is a subset.
pub fn subset_mismatch(want: &Value, got: &Value, path: &str) -> Option<String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match g.get(k) {
                    None => return Some(p),
                    Some(gv) => {
                        if let Some(m) = subset_mismatch(wv, gv, &p) {
                            return Some(m);
                        }
                    }
                }
            }
            None
        }
        (w, g) if w == g => None,
        _ => Some(if path.is_empty() {
            "(root)".into()
        } else {
            path.into()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_subset() {
        let got = json!({"a": 1, "b": {"c": "x", "d": 2}});
        assert_eq!(subset_mismatch(&json!({"b": {"c": "x"}}), &got, ""), None);
        assert_eq!(
            subset_mismatch(&json!({"b": {"c": "y"}}), &got, ""),
            Some("b.c".into())
        );
        assert_eq!(
            subset_mismatch(&json!({"z": 1}), &got, ""),
            Some("z".into())
        );
    }
}
