//! Cloud-wide IMDS behaviour over real HTTP: the propagation delay of a new assignment (400
//! `Identity not found`, aad-pod-identity Known Issues) and the per-machine rate limit (429).

mod common;

use std::time::Duration;

use common::*;
use podid_mocks::{ImdsBehaviour, MachineRef, RequestFilter, ServerHandle, Service};
use serde_json::{Value, json};

const DELAY: Duration = Duration::from_millis(800);

async fn token_request(env: &Env, server: &ServerHandle, client_id: Option<&str>) -> (u16, Value) {
    let mut q = vec![
        ("api-version", "2018-02-01"),
        ("resource", "https://management.azure.com/"),
    ];
    if let Some(c) = client_id {
        q.push(("client_id", c));
    }
    let resp = env
        .client
        .get(format!("{}/metadata/identity/oauth2/token", server.url()))
        .header("Metadata", "true")
        .query(&q)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn not_found() -> Value {
    json!({"error": "invalid_request", "error_description": "Identity not found"})
}

#[tokio::test]
async fn behaviour_is_off_by_default() {
    let env = Env::start().await;
    assert_eq!(env.cloud.imds_behaviour(), ImdsBehaviour::default());
    let pool = MachineRef::scale_set_instance("pool", 1);
    env.cloud
        .assign_identity(&pool, &identity_id("spare-id"))
        .unwrap();
    let (status, _) = token_request(&env, &env.imds_pool1, Some(SPARE_CLIENT)).await;
    assert_eq!(status, 200, "no propagation delay unless set");
    for _ in 0..30 {
        let (status, _) = token_request(&env, &env.imds_node1, Some(READER_CLIENT)).await;
        assert_eq!(status, 200, "no rate limit unless set");
    }
}

#[tokio::test]
async fn newly_assigned_identities_are_not_found_until_the_delay_passed() {
    let env = Env::start().await;
    env.cloud.set_imds_behaviour(ImdsBehaviour {
        propagation_delay: Some(DELAY),
        requests_per_second: None,
    });
    // Assigned when the cloud started: ready at once.
    let (status, _) = token_request(&env, &env.imds_node1, Some(READER_CLIENT)).await;
    assert_eq!(status, 200);
    // Assigned now through the cloud.
    let pool = MachineRef::scale_set_instance("pool", 1);
    env.cloud
        .assign_identity(&pool, &identity_id("spare-id"))
        .unwrap();
    let (status, body) = token_request(&env, &env.imds_pool1, Some(SPARE_CLIENT)).await;
    assert_eq!((status, body), (400, not_found()));
    tokio::time::sleep(DELAY + Duration::from_millis(100)).await;
    let (status, body) = token_request(&env, &env.imds_pool1, Some(SPARE_CLIENT)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], SPARE_CLIENT);

    // Assigned through ARM (a PATCH like MIC's): the delay starts with the PATCH.
    let token = env
        .imds_token(&env.imds_node2, "https://management.azure.com/", None)
        .await;
    let resp = env
        .client
        .patch(env.vm_url("node-2"))
        .bearer_auth(&token)
        .json(&json!({"identity": {"type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {identity_id("spare-id").to_lowercase(): {}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, body) = token_request(&env, &env.imds_node2, Some(SPARE_CLIENT)).await;
    assert_eq!((status, body), (400, not_found()));
    // The system-assigned identity was there before the PATCH: unaffected.
    let (status, _) = token_request(&env, &env.imds_node2, None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(DELAY + Duration::from_millis(100)).await;
    let (status, _) = token_request(&env, &env.imds_node2, Some(SPARE_CLIENT)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_newly_enabled_system_identity_propagates_too_and_the_delay_can_be_switched_off() {
    let env = Env::start().await;
    env.cloud.set_imds_behaviour(ImdsBehaviour {
        propagation_delay: Some(Duration::from_secs(60)),
        requests_per_second: None,
    });
    let pool = MachineRef::scale_set_instance("pool", 1);
    env.cloud.enable_system_assigned(&pool).unwrap();
    let (status, body) = token_request(&env, &env.imds_pool1, None).await;
    assert_eq!((status, body), (400, not_found()));
    // Runtime switch: off again, the same request succeeds at once.
    env.cloud.set_imds_behaviour(ImdsBehaviour::default());
    let (status, body) = token_request(&env, &env.imds_pool1, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn identity_requests_above_the_rate_limit_get_429_per_machine() {
    let env = Env::start().await;
    env.cloud.set_imds_behaviour(ImdsBehaviour {
        propagation_delay: None,
        requests_per_second: Some(3),
    });
    let since = env.cloud.next_seq();
    for i in 0..3 {
        let (status, body) = token_request(&env, &env.imds_node1, Some(READER_CLIENT)).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let resp = env
        .client
        .get(format!(
            "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/&client_id={READER_CLIENT}",
            env.imds_node1.url()
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert!(
        resp.headers()["server"]
            .to_str()
            .unwrap()
            .starts_with("IMDS/")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests");
    assert!(body["error_description"].is_string());
    // Another machine has its own budget.
    let (status, _) = token_request(&env, &env.imds_node2, None).await;
    assert_eq!(status, 200);
    // Instance metadata is not an identity request.
    let resp = env
        .client
        .get(format!(
            "{}/metadata/instance?api-version=2021-02-01",
            env.imds_node1.url()
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The window slides: a second later the machine answers again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = token_request(&env, &env.imds_node1, Some(READER_CLIENT)).await;
    assert_eq!(status, 200);
    let statuses: Vec<u16> = env
        .cloud
        .requests_matching(&RequestFilter {
            service: Some(Service::Imds),
            label: Some("node-1".into()),
            path_prefix: Some("/metadata/identity".into()),
            since_seq: Some(since),
            ..Default::default()
        })
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 200, 200, 429, 200]);
}
