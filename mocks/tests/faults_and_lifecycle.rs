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

fn imds_token_url(server: &podid_mocks::ServerHandle, client_id: Option<&str>) -> String {
    let mut url = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/",
        server.url()
    );
    if let Some(c) = client_id {
        url.push_str(&format!("&client_id={c}"));
    }
    url
}

async fn imds_status(env: &Env, url: &str) -> u16 {
    env.client
        .get(url)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn client_id_rules_match_the_imds_query_and_never_requests_without_one() {
    let env = Env::start().await;
    let mut rule = FaultRule::status(Service::Imds, "/metadata/identity", 500);
    rule.client_id = Some(READER_CLIENT.to_uppercase());
    env.cloud.add_fault(rule);
    let reader = imds_token_url(&env.imds_node1, Some(READER_CLIENT));
    let writer = imds_token_url(&env.imds_node1, Some(WRITER_CLIENT));
    let no_selector = imds_token_url(&env.imds_node2, None);
    assert_eq!(imds_status(&env, &reader).await, 500, "same id, any case");
    assert_eq!(imds_status(&env, &writer).await, 200, "other client id");
    assert_eq!(
        imds_status(&env, &no_selector).await,
        200,
        "a request naming no client id never matches"
    );
}

#[tokio::test]
async fn client_id_rules_match_the_aad_form_and_basic_user() {
    use base64::Engine;
    let env = Env::start().await;
    let mut rule = FaultRule::status(Service::Aad, "/", 503);
    rule.client_id = Some(SP_SECRET_CLIENT.into());
    rule.retry_after = Some("2".into());
    env.cloud.add_fault(rule);
    let url = env.aad_url(&format!("/{TENANT}/oauth2/token"));
    let form = |client: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_secret", SP_SECRET),
            ("resource", "https://management.azure.com/"),
        ]
    };
    let resp = env
        .client
        .post(&url)
        .form(&form(SP_SECRET_CLIENT))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "2");
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{SP_SECRET_CLIENT}:{SP_SECRET}"));
    let resp = env
        .client
        .post(env.aad_url(&format!("/{TENANT}/oauth2/v2.0/token")))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "client id from HTTP Basic");
    let resp = env
        .client
        .post(&url)
        .form(&form(SP_CERT_CLIENT))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "another client reaches AAD (wrong secret)"
    );
    // The handler still sees the whole form after the mock read it for the rule.
    let resp = env
        .client
        .get(env.aad_url(&format!("/{TENANT}/discovery/keys")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "requests naming no client id pass");
    let faulted = env.cloud.requests_matching(&RequestFilter {
        service: Some(Service::Aad),
        ..Default::default()
    });
    let faulted: Vec<_> = faulted.iter().filter(|r| r.faulted).collect();
    assert_eq!(faulted.len(), 2);
    // A request a rule answered is still attributed to the client it named.
    for r in faulted {
        assert_eq!(r.client_id.as_deref(), Some(SP_SECRET_CLIENT), "{r:?}");
    }
}

#[tokio::test]
async fn disconnect_rule_closes_the_connection_without_an_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::start().await;
    let mut rule = FaultRule::disconnect(Service::Imds, "/metadata/identity");
    rule.count = Some(2);
    let since = env.cloud.next_seq();
    env.cloud.add_fault(rule);
    // A raw client: the request is written, and the server closes without a single byte back.
    let mut stream = tokio::net::TcpStream::connect(env.imds_node1.local_addr())
        .await
        .unwrap();
    stream
        .write_all(
            format!(
                "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/&client_id={READER_CLIENT} HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    assert!(
        read.is_err() || answer.is_empty(),
        "no response bytes: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // A real HTTP client sees a transport error, not a status.
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = imds_token_url(&env.imds_node1, Some(READER_CLIENT));
    let err = fresh
        .get(&url)
        .header("Metadata", "true")
        .send()
        .await
        .expect_err("no answer arrives");
    assert!(err.status().is_none(), "{err:?}");
    // Used up: the endpoint answers again.
    assert_eq!(imds_status(&env, &url).await, 200);
    let log = env.cloud.requests_matching(&RequestFilter {
        service: Some(Service::Imds),
        since_seq: Some(since),
        ..Default::default()
    });
    let statuses: Vec<(u16, bool)> = log.iter().map(|r| (r.status, r.faulted)).collect();
    assert_eq!(statuses, vec![(0, true), (0, true), (200, false)]);
}

#[tokio::test]
async fn disconnect_over_tls_and_latency_then_disconnect() {
    let env = Env::start().await;
    let mut rule = FaultRule::disconnect(Service::Arm, "/subscriptions");
    rule.latency = Some(Duration::from_millis(300));
    let id = env.cloud.add_fault(rule);
    let token = env
        .imds_token(&env.imds_node2, "https://management.azure.com/", None)
        .await;
    let start = Instant::now();
    let err = env
        .client
        .get(env.vm_url("node-1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect_err("ARM drops the request");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "latency first"
    );
    assert!(err.status().is_none(), "{err:?}");
    assert!(env.cloud.remove_fault(id));
    let resp = env
        .client
        .get(env.vm_url("node-1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn rules_expire_after_their_duration_and_can_be_removed() {
    let env = Env::start().await;
    let url = imds_token_url(&env.imds_node1, Some(READER_CLIENT));
    let mut brief = FaultRule::status(Service::Imds, "/", 503);
    brief.duration = Some(Duration::from_millis(400));
    let brief = env.cloud.add_fault(brief);
    assert_eq!(imds_status(&env, &url).await, 503);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(imds_status(&env, &url).await, 200, "expired");
    assert!(!env.cloud.remove_fault(brief), "an expired rule is gone");
    let forever = env
        .cloud
        .add_fault(FaultRule::status(Service::Imds, "/", 410));
    assert_eq!(imds_status(&env, &url).await, 410);
    assert!(env.cloud.remove_fault(forever));
    assert!(!env.cloud.remove_fault(forever));
    assert_eq!(imds_status(&env, &url).await, 200);
    // clear_faults still removes everything.
    env.cloud
        .add_fault(FaultRule::status(Service::Imds, "/", 500));
    env.cloud.clear_faults();
    assert_eq!(imds_status(&env, &url).await, 200);
}

#[tokio::test]
async fn throttling_fault_on_arm_carries_retry_after() {
    let env = Env::start().await;
    let mut rule = FaultRule::status(Service::Arm, "/subscriptions/", 429);
    rule.method = Some("GET".into());
    rule.retry_after = Some("7".into());
    rule.body = Some(
        r#"{"error":{"code":"TooManyRequests","message":"The request is being throttled."}}"#
            .into(),
    );
    rule.count = Some(1);
    env.cloud.add_fault(rule);
    let token = env
        .imds_token(&env.imds_node2, "https://management.azure.com/", None)
        .await;
    let resp = env
        .client
        .get(env.vm_url("node-1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    let resp = env
        .client
        .get(env.vm_url("node-1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
