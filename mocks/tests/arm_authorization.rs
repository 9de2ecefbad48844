//! ARM with authorization switched on, over real HTTPS: role assignments of the caller's `oid`
//! decide, inherited from subscription to resource group to resource. MIC needs Virtual Machine
//! Contributor on the machines and Managed Identity Operator on the identities it assigns
//! (aad-pod-identity docs, "Role Assignment"); without the latter ARM answers
//! `LinkedAuthorizationFailed` naming the identities the way MIC's pattern extracts them.

mod common;

use common::arm_send as send;
use common::*;
use podid_mocks::{
    ArmBehaviour, BuiltinRole, MachineRef, RoleAssignment, TokenRequest, TokenSubject, TokenVersion,
};
use serde_json::{Value, json};

/// A management token of the secret service principal, which starts with no control-plane role
/// (only Storage Blob Data Reader on a container).
fn caller_token(env: &Env) -> String {
    env.cloud
        .issue_token(&TokenRequest {
            subject: TokenSubject::ServicePrincipal {
                client_id: SP_SECRET_CLIENT.into(),
            },
            audience: "https://management.azure.com/".into(),
            version: TokenVersion::V1,
            issued_at: None,
            lifetime_secs: None,
        })
        .unwrap()
        .access_token
}

fn grant(env: &Env, role: BuiltinRole, scope: &str) {
    assert!(
        env.cloud
            .add_role_assignment(&RoleAssignment {
                principal_id: SP_SECRET_OBJECT.into(),
                role,
                scope: scope.into(),
            })
            .unwrap()
    );
}

fn rg_scope() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}")
}

fn vmss_scope() -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachineScaleSets/pool",
        rg_scope()
    )
}

fn vmss_url(env: &Env) -> String {
    env.arm_url(&format!("{}?api-version=2019-12-01", vmss_scope()))
}

/// MIC's PATCH adding `names` (lower-cased ids, `{}`).
fn mic_add(names: &[&str]) -> Value {
    let ids: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| (identity_id(n).to_lowercase(), json!({})))
        .collect();
    json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": ids}})
}

fn authorize(env: &Env) {
    env.cloud.set_arm_behaviour(ArmBehaviour {
        authorization: true,
        async_polls: 0,
    });
}

#[tokio::test]
async fn without_a_role_every_request_is_refused_with_azures_message() {
    let env = Env::start().await;
    authorize(&env);
    let token = caller_token(&env);
    let (status, body) = send(&env, reqwest::Method::GET, &vmss_url(&env), &token, None).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "AuthorizationFailed");
    assert_eq!(
        body["error"]["message"],
        format!(
            "The client '{SP_SECRET_CLIENT}' with object id '{SP_SECRET_OBJECT}' does not have authorization to perform action 'Microsoft.Compute/virtualMachineScaleSets/read' over scope '{}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            vmss_scope()
        )
    );
    // Authorization comes before existence: an unknown machine is refused the same way.
    let url = env.arm_url(&format!(
        "{}/providers/Microsoft.Compute/virtualMachines/nope?api-version=2019-12-01",
        rg_scope()
    ));
    let (status, body) = send(&env, reqwest::Method::GET, &url, &token, None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("AuthorizationFailed"))
    );
    // The subscription is listed to callers with some role in it (the principal's only role is
    // a blob data role, which grants no control-plane action), and not to one without any.
    let subscriptions = env.arm_url("/subscriptions?api-version=2020-01-01");
    let (status, body) = send(&env, reqwest::Method::GET, &subscriptions, &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"][0]["subscriptionId"], SUB);
    let nobody = env
        .cloud
        .issue_token(&TokenRequest {
            subject: TokenSubject::ManagedIdentity {
                client_id: SPARE_CLIENT.into(),
            },
            audience: "https://management.azure.com/".into(),
            version: TokenVersion::V1,
            issued_at: None,
            lifetime_secs: None,
        })
        .unwrap()
        .access_token;
    let (status, body) = send(&env, reqwest::Method::GET, &subscriptions, &nobody, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], json!([]));
    assert_eq!(body["count"]["value"], 0);
    let (status, body) = send(
        &env,
        reqwest::Method::GET,
        &env.arm_url(&format!("/subscriptions/{SUB}?api-version=2020-01-01")),
        &nobody,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("AuthorizationFailed"))
    );
    // Switched off again: authentication only.
    env.cloud.set_arm_behaviour(ArmBehaviour::default());
    let (status, _) = send(&env, reqwest::Method::GET, &vmss_url(&env), &token, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn reader_reads_but_may_not_write() {
    let env = Env::start().await;
    authorize(&env);
    grant(&env, BuiltinRole::Reader, &rg_scope());
    let token = caller_token(&env);
    let (status, body) = send(&env, reqwest::Method::GET, &vmss_url(&env), &token, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(mic_add(&["spare-id"])),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "AuthorizationFailed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'Microsoft.Compute/virtualMachineScaleSets/write'"),
        "{message}"
    );
    assert!(
        mic_extracted_ids(message).is_empty(),
        "no identity ids to drop: {message}"
    );
    let (status, body) = send(
        &env,
        reqwest::Method::GET,
        &env.arm_url("/subscriptions?api-version=2020-01-01"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"][0]["subscriptionId"], SUB);
}

#[tokio::test]
async fn vm_contributor_without_identity_operator_gets_linked_authorization_failed() {
    let env = Env::start().await;
    authorize(&env);
    grant(&env, BuiltinRole::VirtualMachineContributor, &rg_scope());
    let token = caller_token(&env);
    let since = env.cloud.next_seq();
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(mic_add(&["spare-id", "reader-id"])),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "LinkedAuthorizationFailed");
    let message = body["error"]["message"].as_str().unwrap();
    let linked = mic_extracted_ids(message);
    let mut expected = vec![
        identity_id("reader-id").to_lowercase(),
        identity_id("spare-id").to_lowercase(),
    ];
    expected.sort();
    assert_eq!(
        linked, expected,
        "MIC extracts exactly the identities: {message}"
    );
    assert!(
        message.starts_with(&format!(
            "The client '{SP_SECRET_CLIENT}' with object id '{SP_SECRET_OBJECT}' has permission to perform action 'Microsoft.Compute/virtualMachineScaleSets/write' on scope '{}'; however, it does not have permission to perform action 'Microsoft.ManagedIdentity/userAssignedIdentities/assign/action' on the linked scope(s) '",
            vmss_scope()
        )),
        "{message}"
    );
    assert!(
        message.ends_with("' or the linked scope(s) are invalid."),
        "{message}"
    );
    let pool = MachineRef::scale_set_instance("pool", 0);
    assert!(
        env.cloud.assigned_identities(&pool).unwrap().is_empty(),
        "nothing changed"
    );
    let refused = env.cloud.requests_matching(&podid_mocks::RequestFilter {
        since_seq: Some(since),
        ..Default::default()
    });
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].identity_ids.len(),
        2,
        "the refused PATCH is attributed"
    );

    // Managed Identity Operator on one identity only: the other is still refused.
    grant(
        &env,
        BuiltinRole::ManagedIdentityOperator,
        &identity_id("spare-id"),
    );
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(mic_add(&["spare-id", "reader-id"])),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        mic_extracted_ids(body["error"]["message"].as_str().unwrap()),
        vec![identity_id("reader-id").to_lowercase()]
    );
    // MIC drops the refused id and retries with the rest: that succeeds.
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(mic_add(&["spare-id"])),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        env.cloud.assigned_identities(&pool).unwrap(),
        vec![identity_id("spare-id")]
    );
    // Removing an identity needs no permission on it; re-listing a held one adds nothing.
    let remove = json!({"identity": {"type": "None"}});
    let (status, _) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(remove),
    )
    .await;
    assert_eq!(status, 200);
    env.cloud
        .assign_identity(&pool, &identity_id("reader-id"))
        .unwrap();
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(mic_add(&["reader-id"])),
    )
    .await;
    assert_eq!(status, 200, "already held, not added: {body}");
}

#[tokio::test]
async fn identity_operator_on_the_resource_group_and_inherited_roles_allow_assignment() {
    let env = Env::start().await;
    authorize(&env);
    let token = caller_token(&env);
    // Subscription-wide VM Contributor and resource-group Managed Identity Operator: MIC's setup.
    grant(
        &env,
        BuiltinRole::VirtualMachineContributor,
        &format!("/subscriptions/{SUB}"),
    );
    grant(&env, BuiltinRole::ManagedIdentityOperator, &rg_scope());
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(mic_add(&["spare-id", "reader-id"])),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["identity"]["userAssignedIdentities"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    // Managed Identity Operator reads identities; VM Contributor does not.
    let identity_url = env.arm_url(&format!(
        "{}?api-version=2018-11-30",
        identity_id("spare-id")
    ));
    let (status, _) = send(&env, reqwest::Method::GET, &identity_url, &token, None).await;
    assert_eq!(status, 200);
    // Owner at the subscription (the certificate principal) may do it all.
    let owner = env
        .cloud
        .issue_token(&TokenRequest {
            subject: TokenSubject::ServicePrincipal {
                client_id: SP_CERT_CLIENT.into(),
            },
            audience: "https://management.azure.com/".into(),
            version: TokenVersion::V2,
            issued_at: None,
            lifetime_secs: None,
        })
        .unwrap()
        .access_token;
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-2"),
        &owner,
        Some(json!({"identity": {"type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {identity_id("writer-id"): {}}}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        &env,
        reqwest::Method::GET,
        &env.arm_url(&format!("{}?api-version=2021-04-01", rg_scope())),
        &owner,
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[test]
fn new_roles_parse_by_display_name() {
    let ra: RoleAssignment = serde_json::from_str(
        r#"{"principal_id":"p","role":"Virtual Machine Contributor","scope":"/subscriptions/s"}"#,
    )
    .unwrap();
    assert_eq!(ra.role, BuiltinRole::VirtualMachineContributor);
    let ra: RoleAssignment = serde_json::from_str(
        r#"{"principal_id":"p","role":"Managed Identity Operator","scope":"/subscriptions/s"}"#,
    )
    .unwrap();
    assert_eq!(ra.role, BuiltinRole::ManagedIdentityOperator);
    assert_eq!(
        BuiltinRole::VirtualMachineContributor.definition_id(),
        "9980e02c-c2be-4d73-94e8-173b1dc7cf3c"
    );
    assert_eq!(
        BuiltinRole::ManagedIdentityOperator.definition_id(),
        "f1a07417-d97a-45cb-824c-7a7467783830"
    );
}
