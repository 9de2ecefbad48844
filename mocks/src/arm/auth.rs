//! ARM bearer authentication: a valid token of this tenant for the management audience.

use axum::http::{HeaderMap, Uri};
use axum::response::Response;

use super::error::unauthorized;
use crate::audience::is_arm_audience;
use crate::context::ServerCtx;
use crate::request_parts::{BearerHeader, bearer, https_base};
use crate::token::verify::verify_bearer;
use crate::token::{AccessTokenClaims, TokenRejection};

/// Returns the token's claims or the 401 ARM would send.
pub(crate) fn authenticate(
    ctx: &ServerCtx,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<AccessTokenClaims, Box<Response>> {
    let token = match bearer(headers) {
        BearerHeader::Token(t) => t,
        BearerHeader::Missing => {
            return Err(Box::new(unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                "The authentication failed because of missing 'Authorization' header.",
            )));
        }
        BearerHeader::OtherScheme => {
            return Err(Box::new(unauthorized(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                "The authentication failed because of invalid 'Authorization' header.",
            )));
        }
    };
    let (tenant, extra) = ctx
        .core
        .with_state(|s| (s.tenant_id.clone(), s.extra_resources.clone()));
    let own = format!("{}/", https_base(headers, uri, ctx.local_addr));
    verify_bearer(ctx.core.signer(), token, &tenant, |aud| is_arm_audience(aud, Some(&own), &extra)).map_err(
        |rejection| {
            let (code, message) = match rejection {
                TokenRejection::Expired => ("ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.".to_string()),
                TokenRejection::WrongIssuer => (
                    "InvalidAuthenticationTokenTenant",
                    format!("The access token is from the wrong issuer. It must match the tenant 'https://sts.windows.net/{tenant}/' associated with this subscription."),
                ),
                TokenRejection::WrongAudience => (
                    "InvalidAuthenticationTokenAudience",
                    "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.".to_string(),
                ),
                TokenRejection::NotYetValid => ("InvalidAuthenticationToken", "The access token is not yet valid.".to_string()),
                TokenRejection::Malformed | TokenRejection::UnknownKey | TokenRejection::BadSignature => {
                    ("InvalidAuthenticationToken", "The access token is invalid.".to_string())
                }
            };
            Box::new(unauthorized(code, &message, &message))
        },
    )
}
