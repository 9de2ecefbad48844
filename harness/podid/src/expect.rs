//! Checking a step's expectations against what the probe saw and what the mock cloud received.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podid_mocks::{MockCloud, RecordedRequest, RequestFilter};
use podid_probe::HttpExchange;
use podid_reports::Failure;
use podid_scenario::reference::{self, Resolve};
use podid_scenario::{Expect, Service};
use serde_json::Value;

use crate::jwt;

/// Everything an expectation may look at.
pub struct Observed<'a> {
    /// The response the step is about (the token answer, or the storage answer).
    pub response: Option<&'a HttpExchange>,
    /// Why there is no response, when there is none.
    pub missing_reason: Option<String>,
    pub elapsed: Duration,
    /// Requests the mock cloud received while the step ran.
    pub requests: &'a [RecordedRequest],
    /// Requests the mock cloud received since the trial began (setup included).
    pub trial_requests: &'a [RecordedRequest],
    pub cloud: &'a MockCloud,
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
            if let Some(want) = body
                .equals
                .as_ref()
                .and_then(|t| render(t, resolver, &mut failures, "body.equals"))
            {
                if r.body != want {
                    failures.push(failure(
                        "body.equals",
                        format!("{want:?}"),
                        format!("{:?}", show_body(&r.body)),
                        "body differs",
                    ));
                }
            }
            if let Some(want) = body
                .contains
                .as_ref()
                .and_then(|t| render(t, resolver, &mut failures, "body.contains"))
            {
                if !r.body.contains(&want) {
                    failures.push(failure(
                        "body.contains",
                        format!("{want:?}"),
                        format!("{:?}", show_body(&r.body)),
                        "body does not contain the text",
                    ));
                }
            }
            if let Some(json) = &body.json {
                match reference::render_json(&json.value, resolver) {
                    Err(e) => failures.push(failure(
                        "body.json",
                        json.value.to_string(),
                        "",
                        format!("cannot resolve: {e}"),
                    )),
                    Ok(want) => match serde_json::from_str::<Value>(&r.body) {
                        Err(e) => failures.push(failure(
                            "body.json",
                            want.to_string(),
                            show_body(&r.body),
                            format!("body is not JSON: {e}"),
                        )),
                        Ok(got) => {
                            if let Some(path) = subset_mismatch(&want, &got, "") {
                                failures.push(failure(
                                    "body.json",
                                    want.to_string(),
                                    got.to_string(),
                                    format!("body differs at `{path}`"),
                                ));
                            }
                        }
                    },
                }
            }
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
            check_token(token, r, observed.cloud, resolver, &mut failures);
        }
    }

    if let Some(max) = expect.max_latency {
        if observed.elapsed > max.0 {
            failures.push(failure(
                "maxLatency",
                max.to_string(),
                format!("{}ms", observed.elapsed.as_millis()),
                "the step took too long",
            ));
        }
    }

    for req in &expect.requests {
        check_requests(&req.value, observed, resolver, &mut failures);
    }
    failures
}

fn check_token(
    token: &podid_scenario::TokenExpect,
    r: &HttpExchange,
    cloud: &MockCloud,
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
    let claims = match jwt::verify(access_token, &cloud.jwks()) {
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

fn check_requests(
    req: &podid_scenario::RequestExpect,
    observed: &Observed,
    resolver: &dyn Resolve,
    failures: &mut Vec<Failure>,
) {
    let service = match req.service {
        Service::Imds => podid_mocks::Service::Imds,
        Service::Aad => podid_mocks::Service::Aad,
        Service::Arm => podid_mocks::Service::Arm,
        Service::Blob => podid_mocks::Service::Blob,
    };
    let mut filter = RequestFilter {
        service: Some(service),
        label: req.node.as_ref().map(|n| n.value.clone()),
        method: req.method.clone(),
        ..RequestFilter::default()
    };
    if let Some(c) = &req.client_id {
        filter.client_id = render(c, resolver, failures, "requests.clientId");
    }
    if let Some(p) = &req.path {
        filter.path_prefix = render(p, resolver, failures, "requests.path");
    }
    let window = match req.since {
        podid_scenario::RequestWindow::Attempt => observed.requests,
        podid_scenario::RequestWindow::Trial => observed.trial_requests,
    };
    let matching: Vec<&RecordedRequest> = window.iter().filter(|r| filter.matches(r)).collect();
    let describe = describe_filter(req, &filter);
    let ok = match req.count {
        Some(n) => matching.len() == n as usize,
        None => !matching.is_empty(),
    };
    if !ok {
        let want = match req.count {
            Some(n) => format!("{n} request(s) {describe}"),
            None => format!("at least one request {describe}"),
        };
        let seen: Vec<String> = matching
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}{} -> {}",
                    r.label,
                    r.method,
                    r.path,
                    client_note(r),
                    r.status
                )
            })
            .collect();
        failures.push(failure(
            &format!("requests.{}", service.as_str()),
            want,
            format!("{} matching: [{}]", matching.len(), seen.join(", ")),
            format!(
                "the mock {} received {} matching request(s)",
                service.as_str(),
                matching.len()
            ),
        ));
    }
}

fn client_note(r: &RecordedRequest) -> String {
    r.client_id
        .as_ref()
        .map(|c| format!(" (client_id {c})"))
        .unwrap_or_default()
}

fn describe_filter(req: &podid_scenario::RequestExpect, f: &RequestFilter) -> String {
    let service = f.service.map(|s| s.as_str()).unwrap_or("any service");
    let mut parts = vec![format!("to {service}")];
    if let Some(l) = &f.label {
        parts.push(format!("on {l}"));
    }
    if let Some(c) = &f.client_id {
        parts.push(format!("for client_id {c}"));
    }
    if let Some(p) = &f.path_prefix {
        parts.push(format!("under {p}"));
    }
    if let Some(m) = &f.method {
        parts.push(format!("with method {m}"));
    }
    if req.since == podid_scenario::RequestWindow::Trial {
        parts.push("since the trial began".into());
    }
    parts.join(" ")
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
