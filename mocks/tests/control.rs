//! The control API over real HTTP, against the real mock cloud: every `RemoteMockCloud` call
//! round-trips and has the effect the in-process call has (seen through the real IMDS), errors
//! carry the mock's message, and `mock-azure serve --control` serves it.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use podid_mocks::control::{self, FailureKind};
use podid_mocks::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const STORAGE: &str = "https://storage.azure.com/";
const TOKEN: &str = "/metadata/identity/oauth2/token";

async fn remote(env: &Env) -> (ControlServer, RemoteMockCloud) {
    let server = control::serve(env.cloud.clone(), loopback()).await.unwrap();
    let remote = RemoteMockCloud::connect(server.url(), Duration::from_secs(10))
        .await
        .unwrap();
    (server, remote)
}

/// Status and body of a token request to `imds`, selecting by client id if given.
async fn imds_token(
    env: &Env,
    imds: &ServerHandle,
    client_id: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut q = vec![("api-version", "2018-02-01"), ("resource", STORAGE)];
    if let Some(c) = client_id {
        q.push(("client_id", c));
    }
    let resp = env
        .client
        .get(format!("{}{TOKEN}", imds.url()))
        .header("Metadata", "true")
        .query(&q)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn refusal(e: ControlError) -> (u16, FailureKind, String) {
    match e {
        ControlError::Refused {
            status,
            kind,
            message,
        } => (status, kind, message),
        other => panic!("expected the mock's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn info_gives_the_run_s_tenant_subscription_ca_and_keys() {
    let env = Env::start().await;
    let (_server, remote) = remote(&env).await;
    assert_eq!(remote.tenant_id(), TENANT);
    assert_eq!(remote.subscription_id(), SUB);
    assert_eq!(remote.ca_pem(), env.cloud.tls().ca_pem());
    assert_eq!(remote.issuer_v1(), env.cloud.issuer_v1());
    let info = remote.info().await.unwrap();
    assert_eq!(info.jwks, env.cloud.jwks());
    assert_eq!(info.next_seq, env.cloud.next_seq());
    assert_eq!(remote.jwks().await.unwrap(), env.cloud.jwks());
    remote.healthz().await.unwrap();
}

#[tokio::test]
async fn identities_assigned_through_control_get_tokens_from_the_real_imds() {
    let env = Env::start().await;
    let (_server, remote) = remote(&env).await;
    let node1 = MachineRef::vm("node-1");
    let spare = identity_id("spare-id");

    let (status, _) = imds_token(&env, &env.imds_node1, Some(SPARE_CLIENT)).await;
    assert_eq!(status, 400, "spare-id is not on node-1 yet");
    remote.assign_identity(&node1, &spare).await.unwrap();
    let (status, body) = imds_token(&env, &env.imds_node1, Some(SPARE_CLIENT)).await;
    assert_eq!(status, 200, "{body}");
    assert_imds_token_body(&body, SPARE_CLIENT, STORAGE);
    let held = remote.assigned_identities(&node1).await.unwrap();
    assert_eq!(held, env.cloud.assigned_identities(&node1).unwrap());
    assert!(held.contains(&spare), "{held:?}");

    assert!(remote.unassign_identity(&node1, &spare).await.unwrap());
    assert!(!remote.unassign_identity(&node1, &spare).await.unwrap());
    let (status, body) = imds_token(&env, &env.imds_node1, Some(SPARE_CLIENT)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_description"], "Identity not found");
}

#[tokio::test]
async fn system_assigned_identities_follow_control_calls() {
    let env = Env::start().await;
    let (_server, remote) = remote(&env).await;
    let pool1 = MachineRef::scale_set_instance("pool", 1);
    assert_eq!(remote.system_assigned(&pool1).await.unwrap(), None);

    let enabled = remote.enable_system_assigned(&pool1).await.unwrap();
    assert_eq!(
        env.cloud.system_assigned(&pool1).unwrap(),
        Some(enabled.clone())
    );
    assert_eq!(
        remote.system_assigned(&pool1).await.unwrap(),
        Some(enabled.clone())
    );
    let (status, body) = imds_token(&env, &env.imds_pool1, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], enabled.client_id.as_str());

    remote.disable_system_assigned(&pool1).await.unwrap();
    assert_eq!(env.cloud.system_assigned(&pool1).unwrap(), None);
    let (status, _) = imds_token(&env, &env.imds_pool1, None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn faults_added_through_control_make_real_requests_fail() {
    let env = Env::start().await;
    let (_server, remote) = remote(&env).await;

    let mut once = FaultRule::status(Service::Imds, "/metadata/identity", 503);
    once.label = Some("node-1".into());
    once.count = Some(1);
    let used_up = remote.add_fault(once).await.unwrap();
    let (status, _) = imds_token(&env, &env.imds_node1, Some(READER_CLIENT)).await;
    assert_eq!(status, 503);
    let (status, _) = imds_token(&env, &env.imds_node1, Some(READER_CLIENT)).await;
    assert_eq!(status, 200);
    assert!(!remote.remove_fault(used_up).await.unwrap());

    let forever = remote
        .add_fault(FaultRule::status(Service::Imds, "/", 429))
        .await
        .unwrap();
    let (status, _) = imds_token(&env, &env.imds_node2, None).await;
    assert_eq!(status, 429);
    assert!(remote.remove_fault(forever).await.unwrap());
    let (status, _) = imds_token(&env, &env.imds_node2, None).await;
    assert_eq!(status, 200);

    remote
        .add_fault(FaultRule::disconnect(Service::Imds, "/"))
        .await
        .unwrap();
    let dropped = env
        .client
        .get(format!("{}{TOKEN}", env.imds_node2.url()))
        .header("Metadata", "true")
        .query(&[("api-version", "2018-02-01"), ("resource", STORAGE)])
        .send()
        .await;
    assert!(dropped.is_err(), "a disconnect rule closes the connection");
    remote.clear_faults().await.unwrap();
    let (status, _) = imds_token(&env, &env.imds_node2, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn requests_since_a_cursor_are_the_ones_served_after_it() {
    let env = Env::start().await;
    let (_server, remote) = remote(&env).await;
    imds_token(&env, &env.imds_node2, None).await;
    let cursor = remote.next_seq().await.unwrap();
    assert_eq!(cursor, env.cloud.next_seq());

    imds_token(&env, &env.imds_node1, Some(READER_CLIENT)).await;
    imds_token(&env, &env.imds_pool1, None).await;
    let since = remote.requests_since(cursor).await.unwrap();
    let labels: Vec<&str> = since.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["node-1", "pool-1"]);
    assert_eq!(since[0].client_id.as_deref(), Some(READER_CLIENT));
    assert_eq!(since[0].path, TOKEN);
    assert!(since.iter().all(|r| r.seq >= cursor));

    let all = remote.requests().await.unwrap();
    assert_eq!(all, env.cloud.requests());
    let filter = RequestFilter {
        service: Some(Service::Imds),
        label: Some("pool-1".into()),
        since_seq: Some(cursor),
        ..RequestFilter::default()
    };
    let matching = remote.requests_matching(&filter).await.unwrap();
    assert_eq!(matching, env.cloud.requests_matching(&filter));
    assert_eq!(matching.len(), 1);
}

#[tokio::test]
async fn behaviours_set_through_control_are_the_cloud_s() {
    let env = Env::start().await;
    let (_server, remote) = remote(&env).await;
    let imds = ImdsBehaviour {
        propagation_delay: Some(Duration::from_millis(1500)),
        requests_per_second: Some(7),
    };
    remote.set_imds_behaviour(imds).await.unwrap();
    assert_eq!(env.cloud.imds_behaviour(), imds);
    assert_eq!(remote.imds_behaviour().await.unwrap(), imds);

    let arm = ArmBehaviour {
        authorization: true,
        async_polls: 3,
    };
    remote.set_arm_behaviour(arm).await.unwrap();
    assert_eq!(env.cloud.arm_behaviour(), arm);
    assert_eq!(remote.arm_behaviour().await.unwrap(), arm);

    // The propagation delay now applies to a fresh assignment, as in-process.
    let node1 = MachineRef::vm("node-1");
    remote
        .assign_identity(&node1, &identity_id("spare-id"))
        .await
        .unwrap();
    let (status, body) = imds_token(&env, &env.imds_node1, Some(SPARE_CLIENT)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_description"], "Identity not found");
}

#[tokio::test]
async fn spec_identity_and_role_changes_round_trip() {
    let env = Env::start().await;
    let (_server, remote) = remote(&env).await;

    let extra = CloudSpec {
        identities: vec![UserAssignedIdentity {
            name: "added-id".into(),
            resource_group: RG.into(),
            client_id: "77777777-0000-0000-0000-000000000001".into(),
            principal_id: "88888888-0000-0000-0000-000000000001".into(),
        }],
        ..CloudSpec::default()
    };
    remote.apply(&extra).await.unwrap();
    let added = identity_id("added-id");
    remote
        .assign_identity(&MachineRef::vm("node-2"), &added)
        .await
        .unwrap();
    let (status, body) = imds_token(
        &env,
        &env.imds_node2,
        Some("77777777-0000-0000-0000-000000000001"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Applying the same objects again is refused with the in-process message.
    let (status, kind, message) = refusal(remote.apply(&extra).await.unwrap_err());
    assert_eq!((status, kind), (409, FailureKind::Duplicate));
    assert_eq!(message, env.cloud.apply(&extra).unwrap_err().to_string());

    let recreated = remote
        .recreate_identity(
            &added,
            Some("77777777-0000-0000-0000-000000000002".into()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(recreated.name, "added-id");
    assert_eq!(recreated.client_id, "77777777-0000-0000-0000-000000000002");
    assert_ne!(
        recreated.principal_id,
        "88888888-0000-0000-0000-000000000001"
    );
    remote.delete_identity(&added).await.unwrap();
    let (status, kind, message) = refusal(remote.delete_identity(&added).await.unwrap_err());
    assert_eq!((status, kind), (404, FailureKind::NotFound));
    assert_eq!(
        message,
        env.cloud.delete_identity(&added).unwrap_err().to_string()
    );

    let grant = RoleAssignment {
        principal_id: SPARE_PRINCIPAL.into(),
        role: BuiltinRole::StorageBlobDataReader,
        scope: account_scope(),
    };
    assert!(remote.add_role_assignment(&grant).await.unwrap());
    assert!(!remote.add_role_assignment(&grant).await.unwrap());
    assert!(
        !env.cloud.add_role_assignment(&grant).unwrap(),
        "it is the cloud's"
    );
    assert!(remote.remove_role_assignment(&grant).await.unwrap());
    assert!(!remote.remove_role_assignment(&grant).await.unwrap());
}

#[tokio::test]
async fn blob_content_is_read_back() {
    let env = Env::start().await;
    let (_server, remote) = remote(&env).await;
    assert_eq!(
        remote
            .blob_content(ACCOUNT, "data", "hello.txt")
            .await
            .unwrap(),
        Some(BLOB_TEXT.as_bytes().to_vec())
    );
    assert_eq!(
        remote
            .blob_content(ACCOUNT, "data", "absent")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn errors_carry_the_mock_s_message() {
    let env = Env::start().await;
    let (server, remote) = remote(&env).await;
    let nope = MachineRef::vm("nope");
    let in_process = env
        .cloud
        .assign_identity(&nope, &identity_id("reader-id"))
        .unwrap_err()
        .to_string();
    let err = remote
        .assign_identity(&nope, &identity_id("reader-id"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), in_process);
    assert_eq!(err.to_string(), "unknown machine 'nope'");
    let (status, kind, _) = refusal(err);
    assert_eq!((status, kind), (404, FailureKind::NotFound));
    let (_, kind, message) = refusal(remote.system_assigned(&nope).await.unwrap_err());
    assert_eq!(
        (kind, message.as_str()),
        (FailureKind::NotFound, "unknown machine 'nope'")
    );

    // Malformed requests and unknown routes answer in the same shape.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let bad = http
        .get(format!(
            "{}v1/machine/user-assigned?machine=/1",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let failure: control::Failure = bad.json().await.unwrap();
    assert_eq!(failure.kind, FailureKind::BadRequest);
    assert!(
        failure.message.contains("invalid machine reference"),
        "{failure:?}"
    );
    let bad_body = http
        .post(format!("{}v1/faults/add", server.url()))
        .json(&serde_json::json!({"service": "nowhere"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_body.status(), 400);
    let failure: control::Failure = bad_body.json().await.unwrap();
    assert_eq!(failure.kind, FailureKind::BadRequest);
    let unknown = http
        .get(format!("{}v1/nothing-here", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // Once the server is gone, calls fail as transport errors naming the call.
    server.shutdown().await;
    let err = remote.next_seq().await.unwrap_err();
    assert!(
        matches!(&err, ControlError::Transport { call, .. } if call.starts_with("GET http://127.0.0.1:") && call.ends_with("/v1/next-seq")),
        "{err:?}"
    );
}

#[tokio::test]
async fn connect_waits_for_a_server_that_comes_up_later() {
    init_crypto();
    let reserved = loopback();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let url = url::Url::parse(&format!("http://{addr}")).unwrap();

    let err = RemoteMockCloud::connect(url.clone(), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ControlError::NotReady { .. }) && err.to_string().contains(url.as_str()),
        "{err}"
    );

    let cloud = MockCloud::new(spec(&sp_cert().cert_pem)).unwrap();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let listener = std::net::TcpListener::bind(addr).unwrap();
        control::serve(cloud, listener).await.unwrap()
    });
    let remote = RemoteMockCloud::connect(url, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(remote.tenant_id(), TENANT);
    late.await.unwrap().shutdown().await;
}

/// `mock-azure serve --control` with a labelled IMDS, driven from outside like a pod.
#[tokio::test]
async fn the_binary_serves_control_and_labels_imds_by_node() {
    init_crypto();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cloud.json");
    std::fs::write(
        &config,
        serde_json::to_string(&spec(&sp_cert().cert_pem)).unwrap(),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-azure"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--imds", "kind-worker@pool/1=127.0.0.1:0"])
        .args(["--control", "127.0.0.1:0"])
        .arg("--ca-out")
        .arg(dir.path().join("ca.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = HashMap::new();
    let startup = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let (key, value) = line.split_once(' ').unwrap();
            printed.insert(key.to_string(), value.to_string());
            if key == "ca" {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), startup)
        .await
        .expect("mock-azure printed its endpoints");
    let control_url = url::Url::parse(&printed["control"]).unwrap();
    let imds = printed["imds[kind-worker]"].clone();
    let remote = RemoteMockCloud::connect(control_url, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(remote.tenant_id(), TENANT);

    let cursor = remote.next_seq().await.unwrap();
    let pool1 = MachineRef::scale_set_instance("pool", 1);
    remote
        .assign_identity(&pool1, &identity_id("reader-id"))
        .await
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let resp = http
        .get(format!("{imds}{TOKEN}"))
        .header("Metadata", "true")
        .query(&[
            ("api-version", "2018-02-01"),
            ("resource", STORAGE),
            ("client_id", READER_CLIENT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = remote.requests_since(cursor).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].label, "kind-worker");
    assert_eq!(seen[0].client_id.as_deref(), Some(READER_CLIENT));
    assert!(child.try_wait().unwrap().is_none(), "still serving");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_binary_refuses_a_control_address_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cloud.json");
    std::fs::write(
        &config,
        serde_json::to_string(&CloudSpec::default()).unwrap(),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-azure"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--control", "0.0.0.0:0"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--control 0.0.0.0:0") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing was served");
}
