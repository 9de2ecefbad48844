//! The request log: every request any mock served, with secrets redacted, and filters over it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Which mock service handled a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Entra ID token service and discovery.
    Aad,
    /// Instance Metadata Service.
    Imds,
    /// Azure Resource Manager.
    Arm,
    /// Blob storage.
    Blob,
}

impl Service {
    /// Lower-case name, as used in labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aad => "aad",
            Self::Imds => "imds",
            Self::Arm => "arm",
            Self::Blob => "blob",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One served request, as later assertions see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// Monotonic sequence number across all services of one cloud.
    pub seq: u64,
    /// Arrival time, unix milliseconds.
    pub at: u64,
    /// Service that handled it.
    pub service: Service,
    /// Server label (the IMDS machine label, else the service name).
    pub label: String,
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Query parameters in order (secret values redacted).
    pub query: Vec<(String, String)>,
    /// Request headers, lower-case names, credentials redacted.
    pub headers: Vec<(String, String)>,
    /// `Host` header (or URI authority).
    pub host: Option<String>,
    /// Peer address.
    pub source: SocketAddr,
    /// Response status; `0` when no answer was sent (a `disconnect` fault rule closed the
    /// connection).
    pub status: u16,
    /// Client id the caller asked for (IMDS/AAD) or authenticated as (ARM/Blob).
    pub client_id: Option<String>,
    /// Requested resource/scope (IMDS/AAD) or token audience (ARM/Blob).
    pub resource: Option<String>,
    /// Identity resource IDs the request concerns, normalised like
    /// [`crate::resource_id::normalize`], sorted: IMDS `mi_res_id`/`msi_res_id`; the
    /// `identity.userAssignedIdentities` keys (added or removed) of an ARM PATCH/PUT of a VM or
    /// scale set, plus, when that write drops every user-assigned identity without listing them
    /// (a PUT, or a `type` without `UserAssigned`), those the machine held.
    #[serde(default)]
    pub identity_ids: Vec<String>,
    /// Whether a fault rule produced the response.
    pub faulted: bool,
}

/// Selects recorded requests; every `Some` field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestFilter {
    /// Only this service.
    pub service: Option<Service>,
    /// Only this server label.
    pub label: Option<String>,
    /// Only this method (case-insensitive).
    pub method: Option<String>,
    /// Only paths starting with this (case-insensitive).
    pub path_prefix: Option<String>,
    /// Only this client id (case-insensitive).
    pub client_id: Option<String>,
    /// Only requests with `seq >= since_seq`.
    pub since_seq: Option<u64>,
}

impl RequestFilter {
    /// Whether `r` passes the filter.
    pub fn matches(&self, r: &RecordedRequest) -> bool {
        self.service.is_none_or(|s| s == r.service)
            && self.label.as_ref().is_none_or(|l| *l == r.label)
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&r.method))
            && self.path_prefix.as_ref().is_none_or(|p| {
                r.path
                    .to_ascii_lowercase()
                    .starts_with(&p.to_ascii_lowercase())
            })
            && self.client_id.as_ref().is_none_or(|c| {
                r.client_id
                    .as_ref()
                    .is_some_and(|rc| rc.eq_ignore_ascii_case(c))
            })
            && self.since_seq.is_none_or(|s| r.seq >= s)
    }
}

/// Header names whose values are never stored.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "secret",
    "x-identity-header",
    "proxy-authorization",
];
/// Query/form keys whose values are never stored.
const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "access_token",
    "refresh_token",
    "assertion",
    "code",
    "sig",
];

/// Placeholder for removed values.
pub const REDACTED: &str = "<redacted>";

/// Returns the header value to store: credentials replaced, keeping an auth scheme word.
pub(crate) fn redact_header(name: &str, value: &str) -> String {
    let lname = name.to_ascii_lowercase();
    if !SECRET_HEADERS.contains(&lname.as_str()) {
        return value.to_string();
    }
    match value.split_once(' ') {
        Some((scheme, _)) if lname.contains("authorization") => format!("{scheme} {REDACTED}"),
        _ => REDACTED.to_string(),
    }
}

/// Returns the query value to store.
pub(crate) fn redact_param(name: &str, value: &str) -> String {
    if SECRET_PARAMS.contains(&name.to_ascii_lowercase().as_str()) {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_but_scheme_kept() {
        assert_eq!(
            redact_header("Authorization", "Bearer eyJabc"),
            "Bearer <redacted>"
        );
        assert_eq!(redact_header("authorization", "opaque"), REDACTED);
        assert_eq!(redact_header("Metadata", "true"), "true");
        assert_eq!(redact_param("client_secret", "s3cret"), REDACTED);
        assert_eq!(redact_param("resource", "https://x/"), "https://x/");
    }
}
