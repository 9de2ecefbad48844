//! `faults` (of the scenario or of one step): each rule names what it matches and does one
//! thing to it — answer with a status, or cut the connection — possibly after a delay.

use super::{Checker, Declared};
use crate::located::Located;
use crate::model::*;

/// Checks one fault rule.
pub(super) fn check_fault(c: &mut Checker, fault: &Located<FaultDecl>, declared: &Declared) {
    let f = &fault.value;
    let service = f.service.value;
    if let Some(node) = &f.node {
        if service == Service::Imds {
            c.node(node);
        } else {
            c.report(
                node.at,
                format!(
                    "`node` picks one node's metadata service, and `{}` does not run per node",
                    service.as_str()
                ),
                "drop `node`, or use `service: imds`",
            );
        }
    }
    if let Some(client_id) = &f.client_id {
        if !matches!(service, Service::Imds | Service::Aad) {
            c.report(
                client_id.at,
                format!(
                    "`clientId` matches the `client_id` of IMDS and AAD token requests, and `{}` requests carry none",
                    service.as_str()
                ),
                "drop `clientId`, or fault `service: imds` or `service: aad`",
            );
        }
        c.template(client_id, declared);
    }
    if let Some(path) = &f.path {
        if !path.starts_with('/') {
            c.report(
                path.at,
                format!("path `{}` does not start with `/`", path.value),
                "write the start of a request path, e.g. `/metadata/identity/oauth2/token`",
            );
        }
        c.template(path, declared);
    }
    if let Some(method) = &f.method {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            c.report(
                fault.at,
                format!("`{method}` is not an HTTP method"),
                "give one method, e.g. `GET`, `PUT` or `PATCH` (compared case-insensitively); write one fault per method",
            );
        }
    }
    match (&f.status, f.disconnect) {
        (Some(status), true) => c.report(
            status.at,
            "a fault answers with `status` or closes the connection (`disconnect`), not both",
            "keep `status` for an error answer, or `disconnect: true` for an unreachable service",
        ),
        (None, false) if f.latency.is_none() => c.report(
            fault.at,
            "the fault does nothing: give `status`, `latency` or `disconnect`",
            "e.g. `{service: imds, status: 500}`, `{service: arm, latency: 5s}` or `{service: imds, disconnect: true}`",
        ),
        _ => {}
    }
    if let Some(status) = &f.status {
        if !(100..=599).contains(&status.value) {
            c.report(
                status.at,
                format!("{} is not an HTTP status", status.value),
                "use a code between 100 and 599",
            );
        }
    } else {
        let needs_status: Vec<&str> = [
            ("body", f.body.is_some()),
            ("retryAfter", f.retry_after.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect();
        if !needs_status.is_empty() {
            let at = f.body.as_ref().map_or(fault.at, |b| b.at);
            c.report(
                at,
                format!(
                    "`{}` shape{} the fault's own answer, and without `status` there is none",
                    needs_status.join("` and `"),
                    if needs_status.len() == 1 { "s" } else { "" }
                ),
                "add `status` (e.g. `status: 429`), or drop them",
            );
        }
    }
    if let Some(body) = &f.body {
        c.template(body, declared);
    }
    if let Some(retry_after) = &f.retry_after {
        if retry_after.trim().is_empty() {
            c.report(
                fault.at,
                "`retryAfter` is empty",
                "give the header's value, e.g. `retryAfter: \"5\"` (seconds)",
            );
        }
    }
    if let Some(count) = &f.count {
        if count.value == 0 {
            c.report(
                count.at,
                "`count: 0` matches no request",
                "give how many matching requests the fault applies to (1 or more), or leave `count` out for every one",
            );
        }
    }
    for (key, value) in [("latency", f.latency), ("duration", f.duration)] {
        if value.is_some_and(|d| d.0.is_zero()) {
            c.report(
                fault.at,
                format!("`{key}` must be longer than zero"),
                format!("leave `{key}` out, or give e.g. `{key}: 2s`"),
            );
        }
    }
}
