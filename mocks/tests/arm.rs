//! ARM over real HTTPS: bearer auth, VM/VMSS identity GET/PATCH merge semantics feeding IMDS.

mod common;

use common::*;
use podid_mocks::{TokenRequest, TokenSubject, TokenVersion};
use serde_json::{Value, json};

async fn send(
    env: &Env,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = env.client.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

#[tokio::test]
async fn authentication_is_required_and_checked() {
    let env = Env::start().await;
    let (status, body, headers) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("node-1"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "AuthenticationFailed");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer authorization_uri=")
    );
    let storage = env
        .imds_token(&env.imds_node2, "https://storage.azure.com/", None)
        .await;
    let (status, body, _) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("node-1"),
        Some(&storage),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("InvalidAuthenticationTokenAudience"))
    );
    let expired = env
        .cloud
        .issue_token(&TokenRequest {
            subject: TokenSubject::ServicePrincipal {
                client_id: SP_SECRET_CLIENT.into(),
            },
            audience: "https://management.azure.com/".into(),
            version: TokenVersion::V1,
            issued_at: Some(1_600_000_000),
            lifetime_secs: None,
        })
        .unwrap();
    let (status, body, _) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("node-1"),
        Some(&expired.access_token),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("ExpiredAuthenticationToken"))
    );
    let (status, body, _) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("node-1"),
        Some("garbage.token.value"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("InvalidAuthenticationToken"))
    );
}

#[tokio::test]
async fn get_vm_lists_assigned_identities() {
    let env = Env::start().await;
    let token = arm_token(&env).await;
    let (status, body, headers) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("node-1"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains_key("x-ms-request-id"));
    assert_eq!(body["name"], "node-1");
    assert_eq!(body["type"], "Microsoft.Compute/virtualMachines");
    assert_eq!(body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(body["identity"]["type"], "UserAssigned");
    let uai = body["identity"]["userAssignedIdentities"]
        .as_object()
        .unwrap();
    assert_eq!(uai.len(), 2);
    assert_eq!(
        uai[&identity_id("reader-id")],
        json!({"principalId": READER_PRINCIPAL, "clientId": READER_CLIENT})
    );
    let (_, body, _) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("node-2"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(body["identity"]["type"], "SystemAssigned");
    assert_eq!(body["identity"]["principalId"], SYS_PRINCIPAL);
    assert_eq!(body["identity"]["tenantId"], TENANT);
    let (_, body, _) = send(
        &env,
        reqwest::Method::GET,
        &vmss_url(&env),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(body["type"], "Microsoft.Compute/virtualMachineScaleSets");
    assert!(body.get("identity").is_none());
}

#[tokio::test]
async fn patch_merges_identities_and_imds_follows() {
    let env = Env::start().await;
    let token = arm_token(&env).await;
    let spare = identity_id("spare-id");
    let imds_q = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&client_id={SPARE_CLIENT}&resource=https://management.azure.com/",
        env.imds_node1.url()
    );
    let imds_status = || async {
        env.client
            .get(&imds_q)
            .header("Metadata", "true")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(imds_status().await, 400);
    // MIC-style add: lower-cased id mapped to {}.
    let add = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {spare.to_lowercase(): {}}}});
    let (status, body, _) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-1"),
        Some(&token),
        Some(add),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["identity"]["userAssignedIdentities"]
            .as_object()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(imds_status().await, 200);
    // Remove with null.
    let remove = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {spare.clone(): null}}});
    let (status, body, _) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-1"),
        Some(&token),
        Some(remove),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["identity"]["userAssignedIdentities"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(imds_status().await, 400);
    // type None clears everything; GET shows no identity.
    let none = json!({"identity": {"type": "None"}});
    let (status, _, _) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-1"),
        Some(&token),
        Some(none),
    )
    .await;
    assert_eq!(status, 200);
    let (_, body, _) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("node-1"),
        Some(&token),
        None,
    )
    .await;
    assert!(body.get("identity").is_none(), "{body}");
    assert!(
        env.cloud
            .assigned_identities(&podid_mocks::MachineRef::vm("node-1"))
            .unwrap()
            .is_empty()
    );
    // VMSS: adding at the scale set makes the instance IMDS answer.
    let add = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {spare.clone(): {}}}});
    let (status, body, _) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        Some(&token),
        Some(add),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let tok = env
        .imds_token(
            &env.imds_pool1,
            "https://management.azure.com/",
            Some(SPARE_CLIENT),
        )
        .await;
    assert!(!tok.is_empty());
    // System + user on node-2 keeps the system identity.
    let both = json!({"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {spare: {}}}});
    let (_, body, _) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-2"),
        Some(&token),
        Some(both),
    )
    .await;
    assert_eq!(body["identity"]["type"], "SystemAssigned, UserAssigned");
    assert_eq!(body["identity"]["principalId"], SYS_PRINCIPAL);
}

#[tokio::test]
async fn arm_errors() {
    let env = Env::start().await;
    let token = arm_token(&env).await;
    let bogus = format!(
        "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/invalid-identity-1"
    );
    let add = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {bogus.clone(): {}}}});
    let (status, body, _) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-1"),
        Some(&token),
        Some(add),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "FailedIdentityOperation");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("'{}'", bogus.to_lowercase())),
        "identity ids are single-quoted for MIC: {msg}"
    );
    let (status, body, _) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("missing-vm"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("ResourceNotFound"))
    );
    let url = env.arm_url(&format!("/subscriptions/{SUB}/resourceGroups/nope/providers/Microsoft.Compute/virtualMachines/x?api-version=2019-12-01"));
    let (status, body, _) = send(&env, reqwest::Method::GET, &url, Some(&token), None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("ResourceGroupNotFound"))
    );
    let url = env.arm_url(&format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/node-1"));
    let (status, body, _) = send(&env, reqwest::Method::GET, &url, Some(&token), None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("MissingApiVersionParameter"))
    );
    let (status, body, _) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-1"),
        Some(&token),
        Some(json!({"identity": {"type": "Sideways"}})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("InvalidParameter"))
    );
}

#[tokio::test]
async fn subscriptions_and_identity_resources() {
    let env = Env::start().await;
    let token = arm_token(&env).await;
    let (status, body, _) = send(
        &env,
        reqwest::Method::GET,
        &env.arm_url("/subscriptions?api-version=2022-12-01"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"][0]["subscriptionId"], SUB);
    assert_eq!(body["value"][0]["tenantId"], TENANT);
    let url = env.arm_url(&format!(
        "{}?api-version=2023-01-31",
        identity_id("reader-id")
    ));
    let (status, body, _) = send(&env, reqwest::Method::GET, &url, Some(&token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["properties"]["clientId"], READER_CLIENT);
    assert_eq!(body["properties"]["principalId"], READER_PRINCIPAL);
}
