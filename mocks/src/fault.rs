//! Fault rules: make the next N matching requests fail, slow down, or both.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::record::Service;

/// A fault to inject; matched against service, server label, path prefix and method.
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
    /// Status to answer with; with `None` the request proceeds normally after `latency`.
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
    /// Delay before answering.
    #[serde(default, with = "millis")]
    pub latency: Option<Duration>,
    /// Applies to the next `count` matching requests; forever if `None`.
    #[serde(default)]
    pub count: Option<u32>,
}

fn root_path() -> String {
    "/".to_string()
}

impl FaultRule {
    /// A rule answering every matching request of `service` under `path_prefix` with `status`.
    pub fn status(service: Service, path_prefix: impl Into<String>, status: u16) -> Self {
        Self {
            service,
            label: None,
            path_prefix: path_prefix.into(),
            method: None,
            status: Some(status),
            body: None,
            content_type: None,
            retry_after: None,
            latency: None,
            count: None,
        }
    }

    /// Whether the rule applies to a request.
    pub(crate) fn matches(&self, service: Service, label: &str, method: &str, path: &str) -> bool {
        self.service == service
            && self.label.as_deref().is_none_or(|l| l == label)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path
                .to_ascii_lowercase()
                .starts_with(&self.path_prefix.to_ascii_lowercase())
            && self.count != Some(0)
    }
}

/// Latency as integer milliseconds in YAML/JSON (`latency: 1500`).
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// The active rules of a cloud; consumed in insertion order.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Vec<FaultRule>,
}

impl FaultSet {
    /// Adds a rule.
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    /// Removes all rules.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Takes one use of the first matching rule, returning a copy of it.
    pub fn take(
        &mut self,
        service: Service,
        label: &str,
        method: &str,
        path: &str,
    ) -> Option<FaultRule> {
        let idx = self
            .rules
            .iter()
            .position(|r| r.matches(service, label, method, path))?;
        let rule = self.rules[idx].clone();
        if let Some(n) = self.rules[idx].count.as_mut() {
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

    #[test]
    fn counted_rule_is_used_up() {
        let mut set = FaultSet::default();
        let mut rule = FaultRule::status(Service::Imds, "/metadata/identity", 500);
        rule.count = Some(2);
        set.add(rule);
        assert!(
            set.take(Service::Imds, "n1", "GET", "/metadata/instance")
                .is_none()
        );
        assert!(
            set.take(Service::Aad, "aad", "GET", "/metadata/identity/x")
                .is_none()
        );
        assert!(
            set.take(
                Service::Imds,
                "n1",
                "GET",
                "/Metadata/Identity/oauth2/token"
            )
            .is_some()
        );
        assert!(
            set.take(
                Service::Imds,
                "n1",
                "GET",
                "/metadata/identity/oauth2/token"
            )
            .is_some()
        );
        assert!(
            set.take(
                Service::Imds,
                "n1",
                "GET",
                "/metadata/identity/oauth2/token"
            )
            .is_none()
        );
    }

    #[test]
    fn rule_yaml_accepts_latency_millis() {
        let r: FaultRule = serde_json::from_str(
            r#"{"service":"arm","status":429,"retry_after":"1","latency":250,"count":1}"#,
        )
        .unwrap();
        assert_eq!(r.latency, Some(Duration::from_millis(250)));
        assert_eq!(r.path_prefix, "/");
    }
}
