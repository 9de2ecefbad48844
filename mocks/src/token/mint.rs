//! Minting access tokens for managed identities and service principals.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::claims::AccessTokenClaims;

/// AAD back-dates `iat`/`nbf` by five minutes to absorb clock skew.
pub const BACKDATE_SECS: u64 = 300;
/// Managed-identity token lifetime (about 24 h, like IMDS).
pub const MI_LIFETIME_SECS: u64 = 86_399;
/// Service-principal token lifetime (about 1 h, like AAD's client-credentials grant).
pub const SP_LIFETIME_SECS: u64 = 3_599;
/// Fixed tenant creation time reported in `xms_tcdt`.
const TENANT_CREATED: u64 = 1_600_000_000;

/// Which token shape to mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenVersion {
    /// `ver 1.0`, `iss https://sts.windows.net/{tid}/`, `appid`.
    V1,
    /// `ver 2.0`, `iss https://login.microsoftonline.com/{tid}/v2.0`, `azp`.
    V2,
}

/// Who a token is for, as the caller of `MockCloud::issue_token` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSubject {
    /// A user-assigned identity or a machine's system-assigned identity, by client id.
    ManagedIdentity {
        /// Its client id.
        client_id: String,
    },
    /// A service principal, by client id.
    ServicePrincipal {
        /// Its client id.
        client_id: String,
    },
}

/// A request to mint a token directly (tests, harness fixtures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Whose token.
    pub subject: TokenSubject,
    /// The `aud` claim.
    pub audience: String,
    /// Token shape.
    pub version: TokenVersion,
    /// Issue time (unix seconds); now if `None`. Lets tests mint expired tokens.
    #[serde(default)]
    pub issued_at: Option<u64>,
    /// Lifetime in seconds; the subject kind's default if `None`.
    #[serde(default)]
    pub lifetime_secs: Option<u64>,
}

/// A signed token with the times AAD/IMDS report next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The JWT.
    pub access_token: String,
    /// `nbf` (unix seconds).
    pub not_before: u64,
    /// `exp` (unix seconds).
    pub expires_on: u64,
    /// Seconds from issue to expiry.
    pub expires_in: u64,
    /// The claims inside `access_token`.
    pub claims: AccessTokenClaims,
}

/// The principal a token is minted for, resolved from the cloud state.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub client_id: String,
    pub object_id: String,
    pub mirid: Option<String>,
    /// `appidacr`: "1" secret, "2" certificate/managed identity.
    pub acr: &'static str,
}

/// Builds the claims for `principal`; `issued_at` is the wall-clock issue time.
pub(crate) fn claims_for(
    tenant_id: &str,
    principal: &Principal,
    audience: &str,
    version: TokenVersion,
    issued_at: u64,
    lifetime: u64,
) -> AccessTokenClaims {
    let nbf = issued_at.saturating_sub(BACKDATE_SECS);
    let v1_issuer = v1_issuer(tenant_id);
    let (iss, ver) = match version {
        TokenVersion::V1 => (v1_issuer.clone(), "1.0"),
        TokenVersion::V2 => (v2_issuer(tenant_id), "2.0"),
    };
    let v1 = version == TokenVersion::V1;
    AccessTokenClaims {
        aud: audience.to_string(),
        iss,
        iat: nbf,
        nbf,
        exp: issued_at + lifetime,
        aio: Some(opaque(24)),
        appid: v1.then(|| principal.client_id.clone()),
        appidacr: v1.then(|| principal.acr.to_string()),
        azp: (!v1).then(|| principal.client_id.clone()),
        azpacr: (!v1).then(|| principal.acr.to_string()),
        idp: v1.then_some(v1_issuer),
        idtyp: Some("app".to_string()),
        oid: principal.object_id.clone(),
        rh: Some(format!("1.{}.", opaque(20))),
        sub: principal.object_id.clone(),
        tid: tenant_id.to_string(),
        uti: Some(opaque(16)),
        ver: ver.to_string(),
        xms_mirid: principal.mirid.clone(),
        xms_tcdt: Some(TENANT_CREATED),
    }
}

/// The v1 issuer of a tenant.
pub fn v1_issuer(tenant_id: &str) -> String {
    format!("https://sts.windows.net/{tenant_id}/")
}

/// The v2 issuer of a tenant.
pub fn v2_issuer(tenant_id: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant_id}/v2.0")
}

/// Random base64url text of about `bytes` bytes of entropy.
fn opaque(bytes: usize) -> String {
    let mut raw = Vec::with_capacity(bytes + 16);
    while raw.len() < bytes {
        raw.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    raw.truncate(bytes);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Current unix time in seconds.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
