//! `PUT`/`GET`/`DELETE /subscriptions/{sub}/resourceGroups/{rg}`
//! ([Resource Groups REST API](https://learn.microsoft.com/rest/api/resources/resource-groups)):
//! create with a region and tags (201, or 200 replacing the tags of one that exists), read, and
//! delete with everything in it, as a long-running operation (202 and a `Location` to poll).

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{arm_error, method_not_allowed, resource_group_not_found, with_arm_headers};
use super::render::ok;
use super::{ArmRequest, operation_results, put_body, rbac};
use crate::resource_id;
use crate::state::{ArmAttributes, CloudState};

const RESOURCE_TYPE: &str = "Microsoft.Resources/subscriptions/resourceGroups";

/// Handles a request for resource group `rg` (authenticated; the subscription is checked).
pub(crate) fn handle(state: &mut CloudState, req: &ArmRequest<'_>, rg: &str) -> Response {
    let scope = resource_id::resource_group(&state.subscription_id, rg);
    if ![Method::GET, Method::PUT, Method::DELETE].contains(req.method) {
        return method_not_allowed(req.method);
    }
    let action = rbac::action_for(RESOURCE_TYPE, req.method);
    if let Some(refusal) = rbac::refuse_unless_allowed(state, req, &action, &scope) {
        return refusal;
    }
    match *req.method {
        Method::GET => match state.resource_group_attributes(rg) {
            Some((name, attributes)) => ok(group_json(&state.subscription_id, &name, &attributes)),
            None => resource_group_not_found(rg),
        },
        Method::PUT => put(state, req, rg),
        _ => {
            if state.delete_resource_group(rg).is_err() {
                return resource_group_not_found(rg);
            }
            tracing::info!(resource_group = %rg, "ARM: resource group deleted");
            operation_results::accepted(state, req, None)
        }
    }
}

fn put(state: &mut CloudState, req: &ArmRequest<'_>, rg: &str) -> Response {
    let valid = !rg.is_empty()
        && rg.len() <= 90
        && !rg.ends_with('.')
        && rg
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.()".contains(c));
    if !valid {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidResourceGroup",
            &format!(
                "The provided resource group name '{rg}' has these invalid characters: the name may contain letters, digits, underscores, hyphens, periods (not at the end) and parentheses, up to 90 characters."
            ),
        );
    }
    let attributes = match put_body::attributes(req.body) {
        Ok(a) => a,
        Err(resp) => return *resp,
    };
    if let Some((_, existing)) = state.resource_group_attributes(rg) {
        if state.resource_groups.contains_key(&rg.to_ascii_lowercase())
            && !existing.location.eq_ignore_ascii_case(&attributes.location)
        {
            return arm_error(
                StatusCode::CONFLICT,
                "InvalidResourceGroupLocation",
                &format!(
                    "Invalid resource group location '{}'. The Resource group already exists in location '{}'.",
                    attributes.location, existing.location
                ),
            );
        }
    }
    let created = state.put_resource_group(rg, attributes);
    let (name, attributes) = state
        .resource_group_attributes(rg)
        .expect("the group was just written");
    tracing::info!(resource_group = %name, created, "ARM: resource group written");
    let body = group_json(&state.subscription_id, &name, &attributes);
    if created {
        with_arm_headers((StatusCode::CREATED, Json(body)).into_response())
    } else {
        ok(body)
    }
}

/// A resource group as ARM returns it (`tags` only when it has some).
fn group_json(sub: &str, name: &str, attributes: &ArmAttributes) -> Value {
    let mut v = json!({
        "id": resource_id::resource_group(sub, name),
        "name": name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": attributes.location,
        "properties": {"provisioningState": "Succeeded"},
    });
    if !attributes.tags.is_empty() {
        v["tags"] = json!(attributes.tags);
    }
    v
}
