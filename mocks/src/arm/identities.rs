//! `PUT`/`GET`/`DELETE …/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}`
//! ([User Assigned Identities REST API](https://learn.microsoft.com/rest/api/managedidentity/user-assigned-identities)).
//! A PUT creates an identity with new client and principal ids (201), which AAD, IMDS and Blob
//! know at once like the spec's identities, or replaces the tags of the one there (200); a
//! DELETE takes it off every machine (200, or 204 when there was none).

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{
    arm_error, method_not_allowed, resource_group_not_found, resource_not_found, with_arm_headers,
};
use super::render::ok;
use super::{ArmRequest, put_body, rbac};
use crate::resource_id::normalize;
use crate::spec::UserAssignedIdentity;
use crate::state::CloudState;

const RESOURCE_TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

/// Handles a request for identity `name` of group `rg`; `scope` is its id as the path spells it.
pub(crate) fn handle(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    rg: &str,
    name: &str,
    scope: &str,
) -> Response {
    if ![Method::GET, Method::PUT, Method::DELETE].contains(req.method) {
        return method_not_allowed(req.method);
    }
    let action = rbac::action_for(RESOURCE_TYPE, req.method);
    if let Some(refusal) = rbac::refuse_unless_allowed(state, req, &action, scope) {
        return refusal;
    }
    if !state.resource_group_exists(rg) {
        return resource_group_not_found(rg);
    }
    let existing = state
        .identities
        .iter()
        .find(|i| i.name.eq_ignore_ascii_case(name) && i.resource_group.eq_ignore_ascii_case(rg))
        .cloned();
    match (req.method.clone(), existing) {
        (Method::GET, Some(i)) => ok(identity_json(state, &i)),
        (Method::GET, None) => resource_not_found(&format!("{RESOURCE_TYPE}/{name}"), rg),
        (Method::PUT, _) => put(state, req, rg, name),
        (_, Some(i)) => {
            state.delete_identity_resource(&i.resource_id(&state.subscription_id));
            tracing::info!(identity = %i.name, "ARM: user-assigned identity deleted");
            with_arm_headers(StatusCode::OK.into_response())
        }
        (_, None) => with_arm_headers(StatusCode::NO_CONTENT.into_response()),
    }
}

fn put(state: &mut CloudState, req: &ArmRequest<'_>, rg: &str, name: &str) -> Response {
    let valid = (3..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidResourceName",
            &format!(
                "Resource name '{name}' is invalid. The name can be between 3 and 128 characters long, must start with a letter or digit and may contain only letters, digits, hyphens and underscores."
            ),
        );
    }
    let attributes = match put_body::attributes(req.body) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    let (identity, created) = state.put_identity(rg, name, attributes);
    tracing::info!(identity = %identity.name, created, "ARM: user-assigned identity written");
    let body = identity_json(state, &identity);
    if created {
        with_arm_headers((StatusCode::CREATED, Json(body)).into_response())
    } else {
        ok(body)
    }
}

/// A user-assigned identity as ARM returns it.
pub(crate) fn identity_json(state: &CloudState, i: &UserAssignedIdentity) -> Value {
    let id = i.resource_id(&state.subscription_id);
    let attributes = state
        .identity_attributes
        .get(&normalize(&id))
        .cloned()
        .unwrap_or_default();
    json!({
        "id": id, "name": i.name, "location": attributes.location,
        "type": RESOURCE_TYPE, "tags": attributes.tags,
        "properties": {"tenantId": state.tenant_id, "principalId": i.principal_id, "clientId": i.client_id}
    })
}
