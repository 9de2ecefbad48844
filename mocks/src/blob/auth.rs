//! Blob bearer authentication: Azure's 401/403 answers and token validation.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::response::ResponseContext;
use crate::audience::is_storage_audience;
use crate::request_parts::{BearerHeader, bearer, header_str};
use crate::token::verify::verify_bearer;
use crate::token::{AccessTokenClaims, TokenRejection, TokenSigner};

/// First service version that accepts bearer tokens.
const MIN_BEARER_VERSION: &str = "2017-11-09";

const AUTH_MESSAGE: &str = "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.";

fn challenge(resp: &mut Response, tenant_id: &str) {
    let v = format!(
        "Bearer authorization_uri=https://login.microsoftonline.com/{tenant_id}/oauth2/authorize resource_id=https://storage.azure.com"
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        resp.headers_mut().insert("www-authenticate", v);
    }
}

/// Authenticates a request to `account`; returns the token's claims or Azure's error response.
pub(crate) fn authenticate(
    rc: &ResponseContext,
    headers: &HeaderMap,
    signer: &TokenSigner,
    tenant_id: &str,
    account: &str,
) -> Result<AccessTokenClaims, Box<Response>> {
    let token = match bearer(headers) {
        BearerHeader::Token(t) => t,
        BearerHeader::Missing => {
            let mut resp = rc.error(
                StatusCode::UNAUTHORIZED,
                "NoAuthenticationInformation",
                AUTH_MESSAGE,
                None,
            );
            challenge(&mut resp, tenant_id);
            return Err(Box::new(resp));
        }
        BearerHeader::OtherScheme => {
            return Err(Box::new(rc.error(
                StatusCode::FORBIDDEN,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
                Some("Only bearer tokens are supported by this service."),
            )));
        }
    };
    let version_ok = header_str(headers, "x-ms-version").is_some_and(|v| v >= MIN_BEARER_VERSION);
    if !version_ok {
        return Err(Box::new(rc.error(
            StatusCode::FORBIDDEN,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
            Some("Authentication scheme Bearer is not supported in this version."),
        )));
    }
    verify_bearer(signer, token, tenant_id, |aud| {
        is_storage_audience(aud, account)
    })
    .map_err(|rej| {
        let detail = match rej {
            TokenRejection::Expired => "Lifetime validation failed. The token is expired.",
            TokenRejection::NotYetValid => {
                "Lifetime validation failed. The token is not yet valid."
            }
            TokenRejection::WrongIssuer => "Issuer validation failed. Issuer did not match.",
            TokenRejection::WrongAudience => "Audience validation failed. Audience did not match.",
            TokenRejection::UnknownKey => {
                "Signature validation failed. Signature key was not found."
            }
            TokenRejection::BadSignature => "Signature validation failed. Signature is invalid.",
            TokenRejection::Malformed => "Token is malformed.",
        };
        let mut resp = rc.error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationInfo",
            AUTH_MESSAGE,
            Some(detail),
        );
        challenge(&mut resp, tenant_id);
        Box::new(resp)
    })
}
