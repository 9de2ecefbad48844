//! Verifying a `client_assertion` JWT against a service principal's registered certificate.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::error::AadError;
use crate::state::SpCertificate;

/// The claims of a client assertion the mock checks.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    aud: serde_json::Value,
    iss: String,
    sub: String,
}

/// Expected assertion type.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Checks header (alg, `x5t`/`x5t#S256`/`x5c`), signature, lifetime, `iss == sub == client_id`
/// and that `aud` is this tenant's v1 or v2 token endpoint (query ignored, any host).
pub(crate) fn verify(
    assertion: &str,
    cert: &SpCertificate,
    client_id: &str,
    tenant_id: &str,
) -> Result<(), AadError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| AadError::bad_assertion(50027, "JWT token is invalid or malformed."))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(AadError::bad_assertion(
            5002738,
            format!(
                "Invalid JWT token. '{:?}' is not a supported signature algorithm.",
                header.alg
            ),
        ));
    }
    let x5c_matches = header
        .x5c
        .as_ref()
        .and_then(|c| c.first())
        .and_then(|c| STANDARD.decode(c).ok())
        .is_some_and(|der| der == cert.der);
    let thumb_matches = header.x5t.as_deref() == Some(cert.x5t.as_str())
        || header.x5t_s256.as_deref() == Some(cert.x5t_s256.as_str());
    if !(thumb_matches || x5c_matches) {
        return Err(AadError::bad_assertion(
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}'] ",
                header.x5t.or(header.x5t_s256).unwrap_or_default()
            ),
        ));
    }
    let key = DecodingKey::from_rsa_pem(cert.pem.as_bytes()).map_err(|_| {
        AadError::bad_assertion(700027, "Client assertion failed signature validation.")
    })?;
    let mut validation = Validation::new(header.alg);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = 300;
    validation.required_spec_claims = HashSet::from(["exp".to_string()]);
    let data = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation).map_err(
        |e| match e.kind() {
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => AadError::bad_assertion(
                700024,
                "Client assertion is not within its valid time range.",
            ),
            ErrorKind::InvalidSignature => {
                AadError::bad_assertion(700027, "Client assertion failed signature validation.")
            }
            _ => AadError::bad_assertion(50027, "JWT token is invalid or malformed."),
        },
    )?;
    let claims = data.claims;
    if !claims.iss.eq_ignore_ascii_case(client_id) || !claims.sub.eq_ignore_ascii_case(client_id) {
        return Err(AadError::bad_assertion(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    let auds: Vec<String> = match claims.aud {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(a) => a
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    if !auds.iter().any(|a| is_token_endpoint(a, tenant_id)) {
        return Err(AadError::bad_assertion(
            700212,
            "No matching federated identity record found for presented assertion audience.",
        ));
    }
    Ok(())
}

/// Whether `aud` is `https://HOST/{tenant}/oauth2/token` or `…/oauth2/v2.0/token` (query ignored).
fn is_token_endpoint(aud: &str, tenant_id: &str) -> bool {
    let Ok(url) = url::Url::parse(aud) else {
        return false;
    };
    let path = url.path().trim_end_matches('/').to_ascii_lowercase();
    let t = tenant_id.to_ascii_lowercase();
    path == format!("/{t}/oauth2/token") || path == format!("/{t}/oauth2/v2.0/token")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_must_be_this_tenants_token_endpoint() {
        assert!(is_token_endpoint(
            "https://login.microsoftonline.com/T/oauth2/token?api-version=1.0",
            "t"
        ));
        assert!(is_token_endpoint(
            "https://127.0.0.1:8443/t/oauth2/v2.0/token",
            "t"
        ));
        assert!(!is_token_endpoint(
            "https://login.microsoftonline.com/other/oauth2/token",
            "t"
        ));
        assert!(!is_token_endpoint("not a url", "t"));
    }
}
