//! Signing tokens: for a principal a handler has resolved, or for a subject the harness names.

use super::CloudCore;
use crate::error::MockError;
use crate::state::CloudState;
use crate::token::mint::{self, Principal};
use crate::token::{IssuedToken, TokenRequest, TokenSubject, TokenVersion};

impl CloudCore {
    /// Signs a token for a resolved principal.
    pub(crate) fn mint(
        &self,
        tenant_id: &str,
        principal: &Principal,
        audience: &str,
        version: TokenVersion,
        issued_at: u64,
        lifetime: u64,
    ) -> Result<IssuedToken, MockError> {
        let claims = mint::claims_for(tenant_id, principal, audience, version, issued_at, lifetime);
        let access_token = self.signer.sign(&claims, version == TokenVersion::V1)?;
        Ok(IssuedToken {
            access_token,
            not_before: claims.nbf,
            expires_on: claims.exp,
            expires_in: claims.exp.saturating_sub(issued_at),
            claims,
        })
    }

    /// Mints the token `req` describes, signed like the ones AAD and IMDS hand out.
    pub(crate) fn issue(&self, req: &TokenRequest) -> Result<IssuedToken, MockError> {
        let (principal, default_lifetime, tenant) = self.with_state(|state| {
            let (principal, lifetime) = resolve(state, &req.subject)?;
            Ok::<_, MockError>((principal, lifetime, state.tenant_id.clone()))
        })?;
        self.mint(
            &tenant,
            &principal,
            &req.audience,
            req.version,
            req.issued_at.unwrap_or_else(mint::now_secs),
            req.lifetime_secs.unwrap_or(default_lifetime),
        )
    }

    /// The JWKS document AAD publishes for this cloud (verifies every token it issues).
    pub(crate) fn jwks(&self) -> serde_json::Value {
        self.signer.jwks(&mint::v2_issuer(&self.tenant_id()))
    }
}

/// The principal behind `subject` and the default lifetime of its tokens.
fn resolve(state: &CloudState, subject: &TokenSubject) -> Result<(Principal, u64), MockError> {
    match subject {
        TokenSubject::ManagedIdentity { client_id } => {
            let found = state
                .identities
                .iter()
                .find(|i| i.client_id.eq_ignore_ascii_case(client_id))
                .map(|i| {
                    (
                        i.client_id.clone(),
                        i.principal_id.clone(),
                        i.resource_id(&state.subscription_id),
                    )
                })
                .or_else(|| {
                    state.machines.iter().find_map(|m| {
                        m.system
                            .as_ref()
                            .filter(|s| s.client_id.eq_ignore_ascii_case(client_id))
                            .map(|s| {
                                (
                                    s.client_id.clone(),
                                    s.principal_id.clone(),
                                    m.mirid(&state.subscription_id),
                                )
                            })
                    })
                });
            let (client_id, object_id, mirid) = found.ok_or_else(|| MockError::NotFound {
                kind: "managed identity",
                id: client_id.clone(),
            })?;
            let p = Principal {
                client_id,
                object_id,
                mirid: Some(mirid),
                acr: "2",
            };
            Ok((p, mint::MI_LIFETIME_SECS))
        }
        TokenSubject::ServicePrincipal { client_id } => {
            let sp = state
                .service_principal(client_id)
                .ok_or_else(|| MockError::NotFound {
                    kind: "service principal",
                    id: client_id.clone(),
                })?;
            let acr = if sp.cert.is_some() { "2" } else { "1" };
            let p = Principal {
                client_id: sp.spec.client_id.clone(),
                object_id: sp.spec.object_id.clone(),
                mirid: None,
                acr,
            };
            Ok((p, mint::SP_LIFETIME_SECS))
        }
    }
}
