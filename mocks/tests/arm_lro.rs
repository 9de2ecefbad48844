//! Long-running VM/VMSS writes over real HTTPS, as go-autorest (MIC) and azure-core poll them:
//! 200 with `provisioningState: Updating` + `Azure-AsyncOperation` + `Retry-After`, `InProgress`
//! a set number of times, then `Succeeded`; the machine changes only then.

mod common;

use common::*;
use podid_mocks::{ArmBehaviour, FaultRule, MachineRef, RequestFilter, Service};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

async fn send(
    env: &Env,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, HeaderMap, String) {
    let mut req = env.client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

fn add(name: &str) -> Value {
    json!({"identity": {"type": "UserAssigned",
        "userAssignedIdentities": {identity_id(name).to_lowercase(): {}}}})
}

fn with_polls(env: &Env, polls: u32) {
    env.cloud.set_arm_behaviour(ArmBehaviour {
        authorization: false,
        async_polls: polls,
    });
}

/// Starts a write and returns its operation URL after checking the first answer: 200, the
/// machine updating but not changed yet.
async fn start(env: &Env, method: reqwest::Method, url: &str, token: &str, body: Value) -> String {
    let (status, headers, text) = send(env, method, url, token, Some(body)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["retry-after"], "1");
    let machine: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        machine["properties"]["provisioningState"], "Updating",
        "{machine}"
    );
    headers["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn patch_is_accepted_then_polled_in_progress_then_succeeds() {
    let env = Env::start().await;
    with_polls(&env, 2);
    let token = arm_token(&env).await;
    let pool = MachineRef::scale_set_instance("pool", 0);
    let op = start(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        add("spare-id"),
    )
    .await;
    let prefix = format!(
        "https://management.azure.com:{}/subscriptions/{SUB}/providers/Microsoft.Compute/locations/eastus/operations/",
        env.arm.local_addr().port()
    );
    assert!(op.starts_with(&prefix), "{op}");
    assert!(op.ends_with("?api-version=2019-12-01"), "{op}");
    let op_id = op[prefix.len()..op.len() - "?api-version=2019-12-01".len()].to_string();
    assert!(uuid::Uuid::parse_str(&op_id).is_ok(), "{op_id}");

    // Accepted, not applied: ARM shows the machine updating, IMDS does not know the identity.
    assert!(env.cloud.assigned_identities(&pool).unwrap().is_empty());
    let (status, _, text) = send(&env, reqwest::Method::GET, &vmss_url(&env), &token, None).await;
    assert_eq!(status, 200);
    let vmss: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(vmss["properties"]["provisioningState"], "Updating");
    assert!(vmss.get("identity").is_none(), "{vmss}");

    for poll in 1..=2 {
        let (status, headers, text) = send(&env, reqwest::Method::GET, &op, &token, None).await;
        assert_eq!(status, 200);
        assert_eq!(headers["retry-after"], "1", "poll {poll}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["status"], "InProgress", "poll {poll}");
        assert_eq!(body["name"], op_id);
        assert!(body["startTime"].is_string() && body.get("endTime").is_none());
        assert!(env.cloud.assigned_identities(&pool).unwrap().is_empty());
    }
    let (status, headers, text) = send(&env, reqwest::Method::GET, &op, &token, None).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("retry-after"), "finished");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "Succeeded");
    let (start, end) = (
        body["startTime"].as_str().unwrap(),
        body["endTime"].as_str().unwrap(),
    );
    assert!(
        start.ends_with("+00:00") && start.len() == end.len() && start <= end,
        "{body}"
    );
    assert_eq!(
        env.cloud.assigned_identities(&pool).unwrap(),
        vec![identity_id("spare-id")]
    );
    let (_, _, text) = send(&env, reqwest::Method::GET, &vmss_url(&env), &token, None).await;
    let vmss: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(vmss["properties"]["provisioningState"], "Succeeded");
    assert!(vmss["identity"]["userAssignedIdentities"][identity_id("spare-id")].is_object());
    // A finished operation keeps answering its outcome.
    let (_, _, text) = send(&env, reqwest::Method::GET, &op, &token, None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "Succeeded"
    );
    // Every poll is an ARM request in the log.
    let polls = env.cloud.requests_matching(&RequestFilter {
        service: Some(Service::Arm),
        path_prefix: Some(format!(
            "/subscriptions/{SUB}/providers/Microsoft.Compute/locations/"
        )),
        ..Default::default()
    });
    assert_eq!(polls.len(), 4);
    assert!(polls.iter().all(|r| r.method == "GET" && r.status == 200));
}

#[tokio::test]
async fn put_replaces_identities_when_its_operation_completes() {
    let env = Env::start().await;
    with_polls(&env, 1);
    let token = arm_token(&env).await;
    let node1 = MachineRef::vm("node-1");
    let body = json!({"location": "eastus", "identity": {"type": "UserAssigned",
        "userAssignedIdentities": {identity_id("writer-id"): {}}}});
    let op = start(
        &env,
        reqwest::Method::PUT,
        &env.vm_url("node-1"),
        &token,
        body,
    )
    .await;
    assert_eq!(env.cloud.assigned_identities(&node1).unwrap().len(), 2);
    let (_, _, text) = send(&env, reqwest::Method::GET, &op, &token, None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "InProgress"
    );
    let (_, _, text) = send(&env, reqwest::Method::GET, &op, &token, None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "Succeeded"
    );
    assert_eq!(
        env.cloud.assigned_identities(&node1).unwrap(),
        vec![identity_id("writer-id")]
    );
}

#[tokio::test]
async fn operation_fails_when_its_identity_is_gone_before_it_completes() {
    let env = Env::start().await;
    with_polls(&env, 1);
    let token = arm_token(&env).await;
    let op = start(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        add("spare-id"),
    )
    .await;
    env.cloud.delete_identity(&identity_id("spare-id")).unwrap();
    send(&env, reqwest::Method::GET, &op, &token, None).await;
    let (status, _, text) = send(&env, reqwest::Method::GET, &op, &token, None).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "Failed");
    assert_eq!(body["error"]["code"], "FailedIdentityOperation");
    assert_eq!(
        mic_extracted_ids(body["error"]["message"].as_str().unwrap()),
        vec![identity_id("spare-id").to_lowercase()]
    );
    assert!(body["endTime"].is_string());
    let pool = MachineRef::scale_set_instance("pool", 0);
    assert!(env.cloud.assigned_identities(&pool).unwrap().is_empty());
}

#[tokio::test]
async fn a_fault_rule_on_the_operation_makes_a_poll_fail_and_requests_are_checked_first() {
    let env = Env::start().await;
    with_polls(&env, 1);
    let token = arm_token(&env).await;
    // Refused writes are answered at once, as without long-running operations.
    let (status, _, text) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(add("not-there")),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("FailedIdentityOperation"));
    let op = start(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        add("spare-id"),
    )
    .await;
    let mut rule = FaultRule::status(
        Service::Arm,
        format!("/subscriptions/{SUB}/providers/Microsoft.Compute/locations/"),
        200,
    );
    rule.body = Some(
        r#"{"status":"Failed","error":{"code":"InternalExecutionError","message":"An internal execution error occurred."}}"#
            .into(),
    );
    rule.count = Some(1);
    env.cloud.add_fault(rule);
    let (status, _, text) = send(&env, reqwest::Method::GET, &op, &token, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "Failed"
    );
    // The fault answered; the operation itself did not advance.
    let (_, _, text) = send(&env, reqwest::Method::GET, &op, &token, None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "InProgress"
    );
    let unknown = op.replace(
        &op.rsplit('/').next().unwrap()[..36],
        "00000000-0000-0000-0000-000000000000",
    );
    let (status, _, _) = send(&env, reqwest::Method::GET, &unknown, &token, None).await;
    assert_eq!(status, 404);
    // Synchronous again once switched off.
    env.cloud.set_arm_behaviour(ArmBehaviour::default());
    let (status, _, _) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(add("reader-id")),
    )
    .await;
    assert_eq!(status, 200);
}
