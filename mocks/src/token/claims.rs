//! The claim set of the access tokens the mock issues (v1 and v2 shapes).

use serde::{Deserialize, Serialize};

/// Claims of an AAD access token; v1-only and v2-only claims are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Audience: the requested resource, verbatim.
    pub aud: String,
    /// Issuer: `https://sts.windows.net/{tid}/` (v1) or `https://login.microsoftonline.com/{tid}/v2.0` (v2).
    pub iss: String,
    /// Issued at (back-dated 5 minutes, as AAD does).
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Opaque AAD value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aio: Option<String>,
    /// v1: client id of the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// v1: how the client authenticated ("1" secret, "2" certificate or managed identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appidacr: Option<String>,
    /// v2: client id of the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// v2: how the client authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azpacr: Option<String>,
    /// v1: identity provider (same as the v1 issuer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// Identity type; always `app` for client-credential and managed-identity tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idtyp: Option<String>,
    /// Object id of the principal (the RBAC key).
    pub oid: String,
    /// Opaque AAD value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rh: Option<String>,
    /// Subject; equals `oid` for app-only tokens.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    /// Unique token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uti: Option<String>,
    /// Token version, "1.0" or "2.0".
    pub ver: String,
    /// Managed identity's resource id (user-assigned identity, or the VM/VMSS for system-assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xms_mirid: Option<String>,
    /// Tenant creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xms_tcdt: Option<u64>,
}

impl AccessTokenClaims {
    /// The caller's client id, whichever version the token is.
    pub fn client_id(&self) -> Option<&str> {
        self.appid.as_deref().or(self.azp.as_deref())
    }
}
