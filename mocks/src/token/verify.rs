//! Verifying bearer tokens presented to ARM and Blob against the mock's own key and tenant.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};

use super::claims::AccessTokenClaims;
use super::mint::{v1_issuer, v2_issuer};
use super::signer::TokenSigner;

/// Clock skew tolerated on `exp`/`nbf`, like Azure resource providers.
const LEEWAY_SECS: u64 = 300;

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a JWT, or claims missing.
    Malformed,
    /// Signed with a key the tenant does not publish.
    UnknownKey,
    /// Signature does not verify.
    BadSignature,
    /// Past `exp`.
    Expired,
    /// Before `nbf`.
    NotYetValid,
    /// Issuer is not this tenant's v1 or v2 issuer.
    WrongIssuer,
    /// `aud` is not one the service accepts.
    WrongAudience,
}

/// Checks signature, lifetime, issuer (either version, this tenant) and audience.
pub fn verify_bearer(
    signer: &TokenSigner,
    token: &str,
    tenant_id: &str,
    audience_ok: impl Fn(&str) -> bool,
) -> Result<AccessTokenClaims, TokenRejection> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenRejection::BadSignature);
    }
    if header.kid.as_deref() != Some(signer.kid()) {
        return Err(TokenRejection::UnknownKey);
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud"]);
    let data = jsonwebtoken::decode::<AccessTokenClaims>(token, signer.decoding_key(), &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => TokenRejection::Expired,
            ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
            ErrorKind::InvalidSignature => TokenRejection::BadSignature,
            _ => TokenRejection::Malformed,
        })?;
    let claims = data.claims;
    if claims.iss != v1_issuer(tenant_id) && claims.iss != v2_issuer(tenant_id) {
        return Err(TokenRejection::WrongIssuer);
    }
    if !audience_ok(&claims.aud) {
        return Err(TokenRejection::WrongAudience);
    }
    Ok(claims)
}
