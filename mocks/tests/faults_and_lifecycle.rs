//! Fault injection, server shutdown, spec merging and config parsing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use podid_mocks::{
    CloudSpec, Endpoint, FaultRule, MachineRef, MockCloud, RequestFilter, Service,
    UserAssignedIdentity,
};

#[tokio::test]
async fn fault_rule_applies_to_next_n_matching_requests_only() {
    let env = Env::start().await;
    let mut rule = FaultRule::status(Service::Imds, "/metadata/identity", 429);
    rule.label = Some("node-1".into());
    rule.body = Some(r#"{"error":"too_many_requests"}"#.into());
    rule.retry_after = Some("1".into());
    rule.count = Some(2);
    env.cloud.add_fault(rule);
    let url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&client_id={READER_CLIENT}&resource=https://management.azure.com/",
        env.imds_node1.url()
    );
    let since = env.cloud.next_seq();
    // Other machines are unaffected.
    let other = env
        .client
        .get(url.replace(&env.imds_node1.url(), &env.imds_node2.url()))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_ne!(other.status(), 429);
    for _ in 0..2 {
        let resp = env
            .client
            .get(&url)
            .header("Metadata", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "1");
        assert_eq!(
            resp.text().await.unwrap(),
            r#"{"error":"too_many_requests"}"#
        );
    }
    let resp = env
        .client
        .get(&url)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "rule used up after 2 requests");
    let faulted: Vec<_> = env
        .cloud
        .requests_matching(&RequestFilter {
            since_seq: Some(since),
            ..Default::default()
        })
        .into_iter()
        .filter(|r| r.faulted)
        .collect();
    assert_eq!(faulted.len(), 2);
    assert!(
        faulted
            .iter()
            .all(|r| r.status == 429 && r.client_id.as_deref() == Some(READER_CLIENT))
    );
}

#[tokio::test]
async fn latency_only_fault_delays_then_serves_normally() {
    let env = Env::start().await;
    let mut rule = FaultRule::status(Service::Aad, "/", 0);
    rule.status = None;
    rule.latency = Some(Duration::from_millis(400));
    rule.count = Some(1);
    env.cloud.add_fault(rule);
    let start = Instant::now();
    let resp = env
        .client
        .get(env.aad_url(&format!("/{TENANT}/discovery/keys")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(400));
    let start = Instant::now();
    env.client
        .get(env.aad_url(&format!("/{TENANT}/discovery/keys")))
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() < Duration::from_millis(400));
    // ARM fault with method filter.
    let mut rule = FaultRule::status(Service::Arm, "/subscriptions", 503);
    rule.method = Some("PATCH".into());
    env.cloud.add_fault(rule);
    let token = env
        .imds_token(&env.imds_node2, "https://management.azure.com/", None)
        .await;
    let get = env
        .client
        .get(env.vm_url("node-1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let patch = env
        .client
        .patch(env.vm_url("node-1"))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 503);
    env.cloud.clear_faults();
    let patch = env
        .client
        .patch(env.vm_url("node-1"))
        .bearer_auth(&token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
}

#[tokio::test]
async fn shutdown_stops_serving_and_drop_stops_too() {
    init_crypto();
    let cloud = MockCloud::new(spec(&sp_cert().cert_pem)).unwrap();
    let handle = cloud
        .serve(
            Endpoint::Imds {
                machine: MachineRef::vm("node-1"),
                label: "n".into(),
            },
            loopback(),
        )
        .await
        .unwrap();
    let url = format!("{}/metadata/versions", handle.url());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(
        client
            .get(&url)
            .header("Metadata", "true")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    handle.shutdown().await;
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        fresh.get(&url).send().await.is_err(),
        "server must be gone after shutdown"
    );

    let dropped = cloud.serve(Endpoint::Aad, loopback()).await.unwrap();
    let addr = dropped.local_addr();
    drop(dropped);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "dropping the handle stops the server"
    );

    let unknown = cloud
        .serve(
            Endpoint::Imds {
                machine: MachineRef::vm("nope"),
                label: "x".into(),
            },
            loopback(),
        )
        .await;
    assert!(unknown.is_err());
}

#[test]
fn apply_rejects_duplicates_and_foreign_tenants_atomically() {
    init_crypto();
    let cloud = MockCloud::new(spec(&sp_cert().cert_pem)).unwrap();
    let new_id = UserAssignedIdentity {
        name: "late-id".into(),
        resource_group: RG.into(),
        client_id: "77777777-0000-0000-0000-000000000001".into(),
        principal_id: "88888888-0000-0000-0000-000000000001".into(),
    };
    let dup = UserAssignedIdentity {
        client_id: "77777777-0000-0000-0000-000000000002".into(),
        ..new_id.clone()
    };
    let err = cloud.apply(&CloudSpec {
        identities: vec![new_id.clone(), dup],
        ..Default::default()
    });
    assert!(err.is_err());
    // Nothing of the failed spec was applied.
    assert!(
        cloud
            .assign_identity(&MachineRef::vm("node-2"), &identity_id("late-id"))
            .is_err()
    );
    cloud
        .apply(&CloudSpec {
            identities: vec![new_id],
            ..Default::default()
        })
        .unwrap();
    cloud
        .assign_identity(&MachineRef::vm("node-2"), &identity_id("late-id"))
        .unwrap();
    let foreign = CloudSpec {
        tenant_id: "11111111-2222-3333-4444-555555555555".into(),
        ..Default::default()
    };
    assert!(cloud.apply(&foreign).is_err());
    assert!(
        MockCloud::new(CloudSpec::default()).is_err(),
        "tenant and subscription are required"
    );
}

#[test]
fn example_config_parses_as_yaml_and_json_round_trips() {
    let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cloud.yaml"))
        .unwrap();
    let spec: CloudSpec = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(spec.machines.len(), 2);
    assert_eq!(
        spec.machines[1].kind,
        podid_mocks::MachineKind::ScaleSet { instances: 2 }
    );
    let json = serde_json::to_string(&spec).unwrap();
    let back: CloudSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    init_crypto();
    MockCloud::new(spec).unwrap();
}
