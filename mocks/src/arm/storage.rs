//! Storage accounts and blob containers through ARM:
//! `PUT`/`GET`/`DELETE …/providers/Microsoft.Storage/storageAccounts/{account}`
//! ([Storage Accounts REST API](https://learn.microsoft.com/rest/api/storagerp/storage-accounts))
//! and `…/storageAccounts/{account}/blobServices/default/containers/{container}`
//! ([Blob Containers REST API](https://learn.microsoft.com/rest/api/storagerp/blob-containers)).
//! A new account is created as a long-running operation (202 and a `Location` whose poll
//! answers the account), as Azure does; the Blob mock serves it and its containers at once.

use axum::Json;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{
    arm_error, method_not_allowed, resource_group_not_found, resource_not_found, with_arm_headers,
};
use super::operations::timestamp;
use super::render::ok;
use super::{ArmRequest, operation_results, put_body, rbac};
use crate::blob::valid_container_name;
use crate::hosts::blob_host;
use crate::resource_id;
use crate::state::{AccountState, ArmAttributes, CloudState};
use crate::state_changes::AccountPut;

const ACCOUNT_TYPE: &str = "Microsoft.Storage/storageAccounts";
const CONTAINER_TYPE: &str = "Microsoft.Storage/storageAccounts/blobServices/containers";

/// Handles a request for account `account` of group `rg`, or for one of its containers;
/// `scope` is the resource as the path spells it.
pub(crate) fn handle(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    rg: &str,
    account: &str,
    container: Option<&str>,
    scope: &str,
) -> Response {
    if ![Method::GET, Method::PUT, Method::DELETE].contains(req.method) {
        return method_not_allowed(req.method);
    }
    let resource_type = if container.is_some() {
        CONTAINER_TYPE
    } else {
        ACCOUNT_TYPE
    };
    let action = rbac::action_for(resource_type, req.method);
    if let Some(refusal) = rbac::refuse_unless_allowed(state, req, &action, scope) {
        return refusal;
    }
    if !state.resource_group_exists(rg) {
        return resource_group_not_found(rg);
    }
    match container {
        None => account_request(state, req, rg, account),
        Some(c) => container_request(state, req, rg, account, c),
    }
}

/// The account of that name in that group.
fn account_in<'a>(state: &'a CloudState, rg: &str, account: &str) -> Option<&'a AccountState> {
    state
        .accounts
        .get(&account.to_ascii_lowercase())
        .filter(|a| a.resource_group.eq_ignore_ascii_case(rg))
}

fn account_request(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    rg: &str,
    account: &str,
) -> Response {
    let not_found = || resource_not_found(&format!("{ACCOUNT_TYPE}/{account}"), rg);
    match *req.method {
        Method::GET => match account_in(state, rg, account) {
            Some(a) => ok(account_json(state, account, a)),
            None => not_found(),
        },
        Method::PUT => put_account(state, req, rg, account),
        _ => {
            if account_in(state, rg, account).is_none() {
                return with_arm_headers(StatusCode::NO_CONTENT.into_response());
            }
            state.delete_storage_account(account);
            tracing::info!(%account, "ARM: storage account deleted");
            with_arm_headers(StatusCode::OK.into_response())
        }
    }
}

fn put_account(state: &mut CloudState, req: &ArmRequest<'_>, rg: &str, account: &str) -> Response {
    let valid = (3..=24).contains(&account.len())
        && account
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !valid {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "AccountNameInvalid",
            &format!(
                "{account} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only."
            ),
        );
    }
    let body = match put_body::object(req.body) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let attributes = match (put_body::location(&body), put_body::tags(&body)) {
        (Ok(location), Ok(tags)) => ArmAttributes {
            location,
            tags,
            sku: body
                .get("sku")
                .and_then(|s| s.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("Standard_LRS")
                .to_string(),
            kind: body
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("StorageV2")
                .to_string(),
            allow_shared_key_access: body
                .get("properties")
                .and_then(|p| p.get("allowSharedKeyAccess"))
                .and_then(Value::as_bool),
            ..ArmAttributes::default()
        },
        (Err(resp), _) | (_, Err(resp)) => return *resp,
    };
    match state.put_storage_account(account, rg, attributes) {
        AccountPut::Taken => arm_error(
            StatusCode::CONFLICT,
            "StorageAccountAlreadyTaken",
            &format!("The storage account named {account} is already taken."),
        ),
        outcome => {
            let a = account_in(state, rg, account).expect("the account was just written");
            let body = account_json(state, account, a);
            tracing::info!(%account, created = (outcome == AccountPut::Created), "ARM: storage account written");
            if outcome == AccountPut::Created {
                operation_results::accepted(state, req, Some(body))
            } else {
                ok(body)
            }
        }
    }
}

fn container_request(
    state: &mut CloudState,
    req: &ArmRequest<'_>,
    rg: &str,
    account: &str,
    container: &str,
) -> Response {
    let Some(a) = account_in(state, rg, account) else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            &format!(
                "Failed to perform '{}' on resource(s) of type 'storageAccounts/blobServices/containers', because the parent resource '{}' could not be found.",
                verb(req.method),
                resource_id::storage_account(&state.subscription_id, rg, account)
            ),
        );
    };
    let exists = a.containers.contains_key(container);
    match *req.method {
        Method::GET if exists => ok(container_json(state, rg, account, container)),
        Method::GET => resource_not_found(
            &format!("{ACCOUNT_TYPE}/{account}/blobServices/default/containers/{container}"),
            rg,
        ),
        Method::PUT => {
            if !valid_container_name(container) {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "ContainerOperationFailure",
                    &format!(
                        "The container name '{container}' is invalid: it must be 3-63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit."
                    ),
                );
            }
            let created = state
                .put_container(account, container)
                .expect("the account was looked up above");
            tracing::info!(%account, %container, created, "ARM: container written");
            let body = container_json(state, rg, account, container);
            if created {
                with_arm_headers((StatusCode::CREATED, Json(body)).into_response())
            } else {
                ok(body)
            }
        }
        _ if exists => {
            state.delete_container(account, container);
            with_arm_headers(StatusCode::OK.into_response())
        }
        _ => with_arm_headers(StatusCode::NO_CONTENT.into_response()),
    }
}

fn verb(method: &Method) -> &'static str {
    match *method {
        Method::GET => "read",
        Method::DELETE => "delete",
        _ => "write",
    }
}

/// A storage account as ARM returns it.
fn account_json(state: &CloudState, name: &str, a: &AccountState) -> Value {
    let name = name.to_ascii_lowercase();
    json!({
        "id": resource_id::storage_account(&state.subscription_id, &a.resource_group, &name),
        "name": name,
        "type": ACCOUNT_TYPE,
        "location": a.arm.location,
        "tags": a.arm.tags,
        "kind": a.arm.kind,
        "sku": {"name": a.arm.sku, "tier": "Standard"},
        "properties": {
            "provisioningState": "Succeeded",
            "creationTime": timestamp(a.arm.created),
            "primaryEndpoints": {"blob": format!("https://{}/", blob_host(&name))},
            "allowSharedKeyAccess": a.arm.allow_shared_key_access,
        },
    })
}

/// A blob container as ARM returns it.
fn container_json(state: &CloudState, rg: &str, account: &str, container: &str) -> Value {
    let account = account.to_ascii_lowercase();
    let etag = state
        .accounts
        .get(&account)
        .and_then(|a| a.containers.get(container))
        .map(|c| c.etag.clone())
        .unwrap_or_default();
    json!({
        "id": resource_id::container_scope(&state.subscription_id, rg, &account, container),
        "name": container,
        "type": CONTAINER_TYPE,
        "etag": etag,
        "properties": {"publicAccess": "None", "hasImmutabilityPolicy": false, "hasLegalHold": false},
    })
}
