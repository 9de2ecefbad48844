//! IMDS per machine over real HTTP: token selection, exact error bodies, instance metadata.

mod common;

use common::*;
use podid_mocks::{MachineRef, RequestFilter, Service};
use serde_json::{Value, json};

async fn imds_get(
    env: &Env,
    server: &podid_mocks::ServerHandle,
    path_and_query: &str,
    metadata: bool,
) -> (u16, Value) {
    let mut req = env.client.get(format!("{}{path_and_query}", server.url()));
    if metadata {
        req = req.header("Metadata", "true");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const TOKEN: &str = "/metadata/identity/oauth2/token";

#[tokio::test]
async fn adal_style_request_gets_v1_token_with_all_string_fields() {
    let env = Env::start().await;
    // Exactly what NMI's adal sends: sorted keys, url-encoded resource.
    let q = format!(
        "{TOKEN}?api-version=2018-02-01&client_id={READER_CLIENT}&resource=https%3A%2F%2Fstorage.azure.com%2F"
    );
    let (status, body) = imds_get(&env, &env.imds_node1, &q, true).await;
    assert_eq!(status, 200, "{body}");
    common::assert_imds_token_body(&body, READER_CLIENT, "https://storage.azure.com/");
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert!(header.kid.is_some() && header.x5t == header.kid);
    let claims = env
        .verify_with_published_jwks(token, "https://storage.azure.com/", &env.cloud.issuer_v1())
        .await;
    assert_eq!(claims["appid"], READER_CLIENT);
    assert_eq!(claims["oid"], READER_PRINCIPAL);
    assert_eq!(claims["sub"], READER_PRINCIPAL);
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["appidacr"], "2");
    assert_eq!(claims["xms_mirid"], identity_id("reader-id"));
    assert_eq!(
        body["expires_on"],
        claims["exp"].as_u64().unwrap().to_string()
    );
}

#[tokio::test]
async fn identity_selection_by_every_selector() {
    let env = Env::start().await;
    let base = format!("{TOKEN}?api-version=2018-02-01&resource=https://management.azure.com/");
    let appid = |body: &Value| {
        let t = body["access_token"].as_str().unwrap();
        jsonwebtoken::dangerous::insecure_decode::<Value>(t)
            .unwrap()
            .claims["appid"]
            .clone()
    };
    for (sel, expect) in [
        (format!("&client_id={WRITER_CLIENT}"), WRITER_CLIENT),
        (format!("&object_id={READER_PRINCIPAL}"), READER_CLIENT),
        (
            format!("&mi_res_id={}", identity_id("writer-id")),
            WRITER_CLIENT,
        ),
        (
            format!("&msi_res_id={}", identity_id("reader-id").to_uppercase()),
            READER_CLIENT,
        ),
    ] {
        let (status, body) = imds_get(&env, &env.imds_node1, &format!("{base}{sel}"), true).await;
        assert_eq!(status, 200, "{sel}: {body}");
        assert_eq!(appid(&body), json!(expect), "{sel}");
    }
    // object_id / msi_res_id are echoed when requested.
    let (_, body) = imds_get(
        &env,
        &env.imds_node1,
        &format!("{base}&object_id={READER_PRINCIPAL}"),
        true,
    )
    .await;
    assert_eq!(body["object_id"], READER_PRINCIPAL);
    // Two user identities and no system identity: a selector is required.
    let (status, body) = imds_get(&env, &env.imds_node1, &base, true).await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Multiple user assigned identities")
    );
    // System-assigned is the default on node-2; its xms_mirid is the VM.
    let (status, body) = imds_get(&env, &env.imds_node2, &base, true).await;
    assert_eq!(status, 200, "{body}");
    let t = body["access_token"].as_str().unwrap();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(t)
        .unwrap()
        .claims;
    assert_eq!(claims["oid"], SYS_PRINCIPAL);
    assert_eq!(
        claims["xms_mirid"],
        format!(
            "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.Compute/virtualMachines/node-2"
        )
    );
}

/// `xms_mirid` as Azure spells it (lower-case `resourcegroups`, provider namespaces as-is) for
/// each kind of managed identity, from IMDS and from `issue_token` alike.
#[tokio::test]
async fn xms_mirid_is_spelled_as_azure_spells_it_for_every_kind() {
    let env = Env::start().await;
    let mirid = |server: &podid_mocks::ServerHandle, client: Option<&str>| {
        let env = &env;
        let mut q =
            format!("{TOKEN}?api-version=2018-02-01&resource=https://management.azure.com/");
        if let Some(c) = client {
            q.push_str(&format!("&client_id={c}"));
        }
        let server = server.url();
        async move {
            let resp = env
                .client
                .get(format!("{server}{q}"))
                .header("Metadata", "true")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            let t = body["access_token"].as_str().unwrap().to_string();
            jsonwebtoken::dangerous::insecure_decode::<Value>(&t)
                .unwrap()
                .claims["xms_mirid"]
                .clone()
        }
    };
    let user = format!(
        "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader-id"
    );
    assert_eq!(mirid(&env.imds_node1, Some(READER_CLIENT)).await, user);
    let vm = format!(
        "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.Compute/virtualMachines/node-2"
    );
    assert_eq!(mirid(&env.imds_node2, None).await, vm);
    let pool = env
        .cloud
        .enable_system_assigned(&MachineRef::scale_set_instance("pool", 1))
        .unwrap();
    let vmss = format!(
        "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/pool"
    );
    assert_eq!(mirid(&env.imds_pool1, None).await, vmss);
    for (client, expected) in [
        (READER_CLIENT.to_string(), user),
        (SYS_CLIENT.to_string(), vm),
        (pool.client_id, vmss),
    ] {
        let issued = env
            .cloud
            .issue_token(&podid_mocks::TokenRequest {
                subject: podid_mocks::TokenSubject::ManagedIdentity { client_id: client },
                audience: "https://storage.azure.com/".into(),
                version: podid_mocks::TokenVersion::V1,
                issued_at: None,
                lifetime_secs: None,
            })
            .unwrap();
        assert_eq!(issued.claims.xms_mirid.as_deref(), Some(expected.as_str()));
    }
}

#[tokio::test]
async fn identity_not_found_until_assigned_then_found_until_unassigned() {
    let env = Env::start().await;
    let q = format!(
        "{TOKEN}?api-version=2018-02-01&client_id={SPARE_CLIENT}&resource=https://management.azure.com/"
    );
    let not_found = json!({"error": "invalid_request", "error_description": "Identity not found"});
    let (status, body) = imds_get(&env, &env.imds_node1, &q, true).await;
    assert_eq!((status, &body), (400, &not_found));
    env.cloud
        .assign_identity(&MachineRef::vm("node-1"), &identity_id("spare-id"))
        .unwrap();
    let (status, _) = imds_get(&env, &env.imds_node1, &q, true).await;
    assert_eq!(status, 200);
    // Another machine does not see it.
    let (status, _) = imds_get(&env, &env.imds_node2, &q, true).await;
    assert_eq!(status, 400);
    assert!(
        env.cloud
            .unassign_identity(&MachineRef::vm("node-1"), &identity_id("spare-id"))
            .unwrap()
    );
    let (status, body) = imds_get(&env, &env.imds_node1, &q, true).await;
    assert_eq!((status, &body), (400, &not_found));
    // Scale-set assignment reaches the instance IMDS; no identity at all is also "not found".
    let (status, body) = imds_get(&env, &env.imds_pool1, &q, true).await;
    assert_eq!((status, &body), (400, &not_found));
    env.cloud
        .assign_identity(
            &MachineRef::scale_set_instance("pool", 0),
            &identity_id("spare-id"),
        )
        .unwrap();
    let (status, _) = imds_get(&env, &env.imds_pool1, &q, true).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn request_validation_errors_match_imds() {
    let env = Env::start().await;
    let good = format!(
        "{TOKEN}?api-version=2018-02-01&client_id={READER_CLIENT}&resource=https://management.azure.com/"
    );
    let (status, body) = imds_get(&env, &env.imds_node1, &good, false).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error":"invalid_request","error_description":"Required metadata header not specified"})
    );
    // adal 0.9.5's health probe: no Metadata, no resource -> any HTTP answer.
    let (status, _) = imds_get(
        &env,
        &env.imds_node1,
        &format!("{TOKEN}?api-version=2018-02-01"),
        false,
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = imds_get(
        &env,
        &env.imds_node1,
        &format!("{TOKEN}?api-version=2018-02-01"),
        true,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error_description"],
        "Required query variable 'resource' is missing"
    );
    let (status, body) = imds_get(
        &env,
        &env.imds_node1,
        &format!("{TOKEN}?resource=https://management.azure.com/"),
        true,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("api-version was not specified"),
        "{body}"
    );
    assert!(body["newest-versions"].is_array());
    let (status, _) = imds_get(
        &env,
        &env.imds_node1,
        &format!("{TOKEN}?api-version=2017-12-01&resource=https://management.azure.com/"),
        true,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = imds_get(
        &env,
        &env.imds_node1,
        &format!("{good}&resource=https://vault.azure.net"),
        true,
    )
    .await;
    assert_eq!(status, 400, "duplicate query parameters are rejected");
    let (status, body) = imds_get(&env, &env.imds_node1, &format!("{TOKEN}?api-version=2018-02-01&client_id={READER_CLIENT}&resource=https://nope.example/"), true).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_resource");
    let (status, _) = imds_get(
        &env,
        &env.imds_node1,
        &format!("{good}&object_id={READER_PRINCIPAL}"),
        true,
    )
    .await;
    assert_eq!(status, 400, "two selectors");
    let resp = env
        .client
        .post(format!("{}{good}", env.imds_node1.url()))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = env
        .client
        .get(format!("{}{good}", env.imds_node1.url()))
        .header("Metadata", "True")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "Metadata value must be lower-case true");
}

#[tokio::test]
async fn instance_metadata_and_unknown_paths() {
    let env = Env::start().await;
    let (status, body) = imds_get(
        &env,
        &env.imds_node2,
        "/metadata/instance?api-version=2021-02-01",
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["compute"]["name"], "node-2");
    assert_eq!(body["compute"]["subscriptionId"], SUB);
    assert_eq!(body["compute"]["resourceGroupName"], RG);
    assert_eq!(body["compute"]["location"], "westeurope");
    assert!(!body["compute"]["vmId"].as_str().unwrap().is_empty());
    let (status, body) = imds_get(
        &env,
        &env.imds_pool1,
        "/metadata/instance/compute?api-version=2021-02-01",
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "pool_1");
    assert_eq!(body["vmScaleSetName"], "pool");
    let (status, body) = imds_get(
        &env,
        &env.imds_pool1,
        "/metadata/instance/compute/name?api-version=2021-02-01&format=text",
        true,
    )
    .await;
    assert_eq!((status, body), (200, Value::String("pool_1".into())));
    let (status, _) = imds_get(
        &env,
        &env.imds_pool1,
        "/metadata/instance/compute/name?api-version=2021-02-01",
        true,
    )
    .await;
    assert_eq!(status, 400, "leaf without format=text");
    let (status, _) = imds_get(
        &env,
        &env.imds_node2,
        "/metadata/instance?api-version=2021-02-01",
        false,
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = imds_get(
        &env,
        &env.imds_node2,
        "/metadata/identity/info?api-version=2018-02-01",
        true,
    )
    .await;
    assert_eq!((status, body["tenantId"].clone()), (200, json!(TENANT)));
    for path in [
        "/doesnotexist",
        "/metadata/identity/credential?cred-api-version=1.0",
        "/metadata/instance/nope?api-version=2021-02-01",
    ] {
        let (status, _) = imds_get(&env, &env.imds_node1, path, true).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn imds_requests_are_logged_with_label_and_client_id() {
    let env = Env::start().await;
    let since = env.cloud.next_seq();
    env.imds_token(
        &env.imds_node1,
        "https://management.azure.com/",
        Some(READER_CLIENT),
    )
    .await;
    let (status, _) = imds_get(&env, &env.imds_node2, "/nothing", true).await;
    assert_eq!(status, 404);
    let node1 = env.cloud.requests_matching(&RequestFilter {
        service: Some(Service::Imds),
        label: Some("node-1".into()),
        since_seq: Some(since),
        ..Default::default()
    });
    assert_eq!(node1.len(), 1);
    assert_eq!(node1[0].client_id.as_deref(), Some(READER_CLIENT));
    assert_eq!(
        node1[0].resource.as_deref(),
        Some("https://management.azure.com/")
    );
    assert_eq!(node1[0].status, 200);
    assert!(
        node1[0]
            .headers
            .contains(&("metadata".into(), "true".into()))
    );
    assert_eq!(node1[0].source.ip().to_string(), "127.0.0.1");
    let by_client = env.cloud.requests_matching(&RequestFilter {
        client_id: Some(READER_CLIENT.to_lowercase()),
        since_seq: Some(since),
        ..Default::default()
    });
    assert_eq!(by_client.len(), 1);
    let all = env.cloud.requests_matching(&RequestFilter {
        since_seq: Some(since),
        ..Default::default()
    });
    assert_eq!(all.len(), 2);
    assert!(all[0].seq < all[1].seq);
}
