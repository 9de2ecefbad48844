//! Fault rules: make chosen requests fail, stall, or find the endpoint unreachable.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::record::Service;

/// A fault to inject; matched against service, server label, path prefix, method and the client
/// id the request names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Service the rule applies to.
    pub service: Service,
    /// Only servers with this label (IMDS machine label); any if `None`.
    #[serde(default)]
    pub label: Option<String>,
    /// Path prefix (case-insensitive); `/` matches everything.
    #[serde(default = "root_path")]
    pub path_prefix: String,
    /// Only this method; any if `None`.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests naming this client id (case-insensitive): IMDS's `client_id` query
    /// parameter, or AAD's `client_id` form field or HTTP Basic user. A rule with a client id
    /// never matches a request that names none (ARM and Blob requests never do).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Status to answer with; with `None` (and no `disconnect`) the request proceeds normally
    /// after `latency`.
    #[serde(default)]
    pub status: Option<u16>,
    /// Response body (sent as-is).
    #[serde(default)]
    pub body: Option<String>,
    /// `Content-Type` of `body` (defaults to `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// `Retry-After` header value (seconds or HTTP date).
    #[serde(default)]
    pub retry_after: Option<String>,
    /// Delay before answering, disconnecting or passing the request on.
    #[serde(default, with = "crate::millis")]
    pub latency: Option<Duration>,
    /// Close the connection without writing any answer (after `latency`): the client sees an
    /// endpoint that resets or drops it. Takes precedence over `status`.
    #[serde(default)]
    pub disconnect: bool,
    /// Applies to the next `count` matching requests; forever if `None`.
    #[serde(default)]
    pub count: Option<u32>,
    /// Only for this long after the rule is added; forever if `None`.
    #[serde(default, with = "crate::millis")]
    pub duration: Option<Duration>,
}

fn root_path() -> String {
    "/".to_string()
}

/// Names one installed fault rule (returned by `MockCloud::add_fault`, taken by `remove_fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FaultId(u64);

impl std::fmt::Display for FaultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "fault-{}", self.0)
    }
}

/// What a request looks like to fault matching.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FaultTarget<'a> {
    pub service: Service,
    pub label: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    /// The client id the request names (IMDS query, AAD form or Basic user), if any.
    pub client_id: Option<&'a str>,
}

impl FaultRule {
    /// A rule answering every matching request of `service` under `path_prefix` with `status`.
    pub fn status(service: Service, path_prefix: impl Into<String>, status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::pass_through(service, path_prefix)
        }
    }

    /// A rule delaying every matching request by `latency`, then serving it normally.
    pub fn latency(service: Service, path_prefix: impl Into<String>, latency: Duration) -> Self {
        Self {
            latency: Some(latency),
            ..Self::pass_through(service, path_prefix)
        }
    }

    /// A rule closing the connection of every matching request without an answer.
    pub fn disconnect(service: Service, path_prefix: impl Into<String>) -> Self {
        Self {
            disconnect: true,
            ..Self::pass_through(service, path_prefix)
        }
    }

    /// The rule that matches but changes nothing; the constructors above start from it.
    fn pass_through(service: Service, path_prefix: impl Into<String>) -> Self {
        Self {
            service,
            label: None,
            path_prefix: path_prefix.into(),
            method: None,
            client_id: None,
            status: None,
            body: None,
            content_type: None,
            retry_after: None,
            latency: None,
            disconnect: false,
            count: None,
            duration: None,
        }
    }

    /// Whether the rule applies to a request.
    pub(crate) fn matches(&self, t: &FaultTarget<'_>) -> bool {
        self.service == t.service
            && self.label.as_deref().is_none_or(|l| l == t.label)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(t.method))
            && t.path
                .to_ascii_lowercase()
                .starts_with(&self.path_prefix.to_ascii_lowercase())
            && self.client_id.as_deref().is_none_or(|want| {
                t.client_id
                    .is_some_and(|got| got.trim().eq_ignore_ascii_case(want.trim()))
            })
            && self.count != Some(0)
    }
}

/// One installed rule with its id and expiry.
#[derive(Debug)]
struct Installed {
    id: FaultId,
    rule: FaultRule,
    expires: Option<Instant>,
}

/// The active rules of a cloud; consulted in insertion order.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Vec<Installed>,
    next_id: u64,
}

impl FaultSet {
    /// Adds a rule; its `duration` counts from `now`.
    pub fn add(&mut self, rule: FaultRule, now: Instant) -> FaultId {
        self.next_id += 1;
        let id = FaultId(self.next_id);
        let expires = rule.duration.map(|d| now + d);
        self.rules.push(Installed { id, rule, expires });
        id
    }

    /// Removes one rule; returns whether it was still installed (not used up, expired or
    /// removed before).
    pub fn remove(&mut self, id: FaultId, now: Instant) -> bool {
        self.drop_expired(now);
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        before != self.rules.len()
    }

    /// Removes all rules.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    fn drop_expired(&mut self, now: Instant) {
        self.rules.retain(|r| r.expires.is_none_or(|e| now < e));
    }

    /// Takes one use of the first matching, unexpired rule, returning a copy of it.
    pub fn take(&mut self, target: &FaultTarget<'_>, now: Instant) -> Option<FaultRule> {
        self.drop_expired(now);
        let idx = self.rules.iter().position(|r| r.rule.matches(target))?;
        let rule = self.rules[idx].rule.clone();
        if let Some(n) = self.rules[idx].rule.count.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.rules.remove(idx);
            }
        }
        Some(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(service: Service, path: &'a str, client_id: Option<&'a str>) -> FaultTarget<'a> {
        FaultTarget {
            service,
            label: "n1",
            method: "GET",
            path,
            client_id,
        }
    }

    #[test]
    fn counted_rule_is_used_up() {
        let now = Instant::now();
        let mut set = FaultSet::default();
        let mut rule = FaultRule::status(Service::Imds, "/metadata/identity", 500);
        rule.count = Some(2);
        set.add(rule, now);
        let token = "/metadata/identity/oauth2/token";
        assert!(
            set.take(&target(Service::Imds, "/metadata/instance", None), now)
                .is_none()
        );
        assert!(
            set.take(&target(Service::Aad, "/metadata/identity/x", None), now)
                .is_none()
        );
        let upper = "/Metadata/Identity/oauth2/token";
        assert!(set.take(&target(Service::Imds, upper, None), now).is_some());
        assert!(set.take(&target(Service::Imds, token, None), now).is_some());
        assert!(set.take(&target(Service::Imds, token, None), now).is_none());
    }

    #[test]
    fn client_id_rules_need_a_matching_client_id() {
        let now = Instant::now();
        let mut set = FaultSet::default();
        let mut rule = FaultRule::status(Service::Imds, "/", 429);
        rule.client_id = Some("ABC".into());
        set.add(rule, now);
        assert!(set.take(&target(Service::Imds, "/", None), now).is_none());
        assert!(
            set.take(&target(Service::Imds, "/", Some("other")), now)
                .is_none()
        );
        assert!(
            set.take(&target(Service::Imds, "/", Some("abc")), now)
                .is_some()
        );
    }

    #[test]
    fn rules_expire_and_can_be_removed_by_id() {
        let now = Instant::now();
        let mut set = FaultSet::default();
        let mut short = FaultRule::status(Service::Arm, "/", 503);
        short.duration = Some(Duration::from_secs(1));
        let short = set.add(short, now);
        let forever = set.add(FaultRule::status(Service::Arm, "/", 409), now);
        let t = target(Service::Arm, "/subscriptions", None);
        assert_eq!(set.take(&t, now).and_then(|r| r.status), Some(503));
        let later = now + Duration::from_secs(2);
        assert_eq!(set.take(&t, later).and_then(|r| r.status), Some(409));
        assert!(!set.remove(short, later), "an expired rule is gone");
        assert!(set.remove(forever, later));
        assert!(!set.remove(forever, later), "removing twice reports false");
        assert!(set.take(&t, later).is_none());
    }

    #[test]
    fn rule_json_accepts_millis_and_old_shapes() {
        let r: FaultRule = serde_json::from_str(
            r#"{"service":"arm","status":429,"retry_after":"1","latency":250,"count":1}"#,
        )
        .unwrap();
        assert_eq!(r.latency, Some(Duration::from_millis(250)));
        assert_eq!(r.path_prefix, "/");
        assert!(!r.disconnect && r.client_id.is_none() && r.duration.is_none());
        let r: FaultRule = serde_json::from_str(
            r#"{"service":"imds","client_id":"c","disconnect":true,"duration":1500}"#,
        )
        .unwrap();
        assert_eq!(r.duration, Some(Duration::from_millis(1500)));
        assert!(r.disconnect);
        let back: FaultRule = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
