//! Changes made while the cloud runs, seen through ARM and IMDS over real HTTP(S): MIC's batch
//! with invalid identities, system-assigned identities that MIC's PATCHes must not disturb,
//! deleted and recreated identities, and role assignments.

mod common;

use common::arm_send as send;
use common::*;
use podid_mocks::{BuiltinRole, MachineRef, RoleAssignment};
use serde_json::{Value, json};

/// IMDS's answer on `imds` for `selector` (`client_id=…` or `mi_res_id=…`).
async fn imds(env: &Env, imds: &podid_mocks::ServerHandle, selector: (&str, &str)) -> (u16, Value) {
    let resp = env
        .client
        .get(format!("{}/metadata/identity/oauth2/token", imds.url()))
        .header("Metadata", "true")
        .query(&[
            ("api-version", "2018-02-01"),
            ("resource", "https://management.azure.com/"),
            selector,
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn invalid_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourcegroups/{RG}/providers/microsoft.managedidentity/userassignedidentities/{name}"
    )
}

#[tokio::test]
async fn mic_batch_with_invalid_identities_assigns_the_valid_one_after_dropping_the_rest() {
    let env = Env::start().await;
    let token = arm_token(&env).await;
    let valid = identity_id("spare-id").to_lowercase();
    let (bad1, bad2) = (
        invalid_id("invalid-identity-1"),
        invalid_id("invalid-identity-2"),
    );
    // MIC's first PATCH: every identity to add, lower-cased, each `{}`.
    let batch = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {
        valid.clone(): {}, bad1.clone(): {}, bad2.clone(): {}
    }}});
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(batch),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "FailedIdentityOperation");
    let message = body["error"]["message"].as_str().unwrap();
    let mut extracted = mic_extracted_ids(message);
    extracted.sort();
    assert_eq!(
        extracted,
        vec![bad1, bad2],
        "MIC must find exactly the invalid IDs in: {message}"
    );
    let pool = MachineRef::scale_set_instance("pool", 0);
    assert!(
        env.cloud.assigned_identities(&pool).unwrap().is_empty(),
        "a refused PATCH changes nothing"
    );
    // MIC's retry without the erroneous IDs succeeds; the valid identity is then on the machine.
    let retry = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {valid.clone(): {}}}});
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(retry),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = send(&env, reqwest::Method::GET, &vmss_url(&env), &token, None).await;
    let listed: Vec<String> = body["identity"]["userAssignedIdentities"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.to_lowercase())
        .collect();
    assert_eq!(listed, vec![valid]);
    assert_eq!(
        imds(&env, &env.imds_pool1, ("client_id", SPARE_CLIENT))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn system_assigned_principal_survives_mic_patches_and_changes_only_when_disabled() {
    let env = Env::start().await;
    let token = arm_token(&env).await;
    let pool = MachineRef::scale_set_instance("pool", 1);
    let enabled = env.cloud.enable_system_assigned(&pool).unwrap();
    assert_eq!(
        env.cloud.enable_system_assigned(&pool).unwrap(),
        enabled,
        "enabling twice keeps it"
    );
    let (_, body) = send(&env, reqwest::Method::GET, &vmss_url(&env), &token, None).await;
    assert_eq!(body["identity"]["type"], "SystemAssigned");
    assert_eq!(
        body["identity"]["principalId"],
        enabled.principal_id.as_str()
    );
    // MIC adds: it turns `SystemAssigned` into `SystemAssigned, UserAssigned` and lists only the
    // user-assigned identity it adds.
    let spare = identity_id("spare-id").to_lowercase();
    let add = json!({"identity": {"type": "SystemAssigned, UserAssigned",
        "userAssignedIdentities": {spare.clone(): {}}}});
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(add),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"]["type"], "SystemAssigned, UserAssigned");
    assert_eq!(
        body["identity"]["principalId"],
        enabled.principal_id.as_str()
    );
    // MIC removes the last user identity: type back to `SystemAssigned`, no user list.
    let remove = json!({"identity": {"type": "SystemAssigned"}});
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(remove),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["identity"]["type"], "SystemAssigned");
    assert_eq!(
        body["identity"]["principalId"],
        enabled.principal_id.as_str()
    );
    assert_eq!(
        env.cloud.system_assigned(&pool).unwrap(),
        Some(enabled.clone())
    );
    let (status, body) = imds(&env, &env.imds_pool1, ("client_id", &enabled.client_id)).await;
    assert_eq!(status, 200, "{body}");
    // A type without SystemAssigned disables it; enabling again makes a new principal.
    let user_only = json!({"identity": {"type": "UserAssigned",
        "userAssignedIdentities": {spare: {}}}});
    let (status, _) = send(
        &env,
        reqwest::Method::PATCH,
        &vmss_url(&env),
        &token,
        Some(user_only),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(env.cloud.system_assigned(&pool).unwrap(), None);
    let again = env.cloud.enable_system_assigned(&pool).unwrap();
    assert_ne!(again.principal_id, enabled.principal_id);
}

#[tokio::test]
async fn deleted_identity_is_gone_from_arm_machines_and_imds() {
    let env = Env::start().await;
    let token = arm_token(&env).await;
    let reader = identity_id("reader-id");
    assert_eq!(
        imds(&env, &env.imds_node1, ("client_id", READER_CLIENT))
            .await
            .0,
        200
    );
    env.cloud.delete_identity(&reader).unwrap();
    let identity_url = env.arm_url(&format!("{reader}?api-version=2023-01-31"));
    let (status, body) = send(&env, reqwest::Method::GET, &identity_url, &token, None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("ResourceNotFound"))
    );
    let held = env
        .cloud
        .assigned_identities(&MachineRef::vm("node-1"))
        .unwrap();
    assert_eq!(held, vec![identity_id("writer-id")]);
    for selector in [("client_id", READER_CLIENT), ("mi_res_id", reader.as_str())] {
        let (status, body) = imds(&env, &env.imds_node1, selector).await;
        assert_eq!(status, 400, "{selector:?}");
        assert_eq!(body["error_description"], "Identity not found");
    }
    assert!(
        env.cloud.delete_identity(&reader).is_err(),
        "deleting twice is an error"
    );
}

#[tokio::test]
async fn recreated_identity_stays_a_stale_reference_until_removed_and_assigned_again() {
    let env = Env::start().await;
    let token = arm_token(&env).await;
    let reader = identity_id("reader-id");
    let created = env.cloud.recreate_identity(&reader, None, None).unwrap();
    assert_ne!(created.client_id, READER_CLIENT);
    assert_ne!(created.principal_id, READER_PRINCIPAL);
    assert_eq!(created.resource_id(SUB), reader);
    // ARM still lists the resource ID on the VM, without a principal.
    let (_, body) = send(
        &env,
        reqwest::Method::GET,
        &env.vm_url("node-1"),
        &token,
        None,
    )
    .await;
    let listed = &body["identity"]["userAssignedIdentities"][&reader];
    assert_eq!(
        listed,
        &json!({"principalId": null, "clientId": null}),
        "{body}"
    );
    // The identity resource itself has the new IDs.
    let identity_url = env.arm_url(&format!("{reader}?api-version=2023-01-31"));
    let (_, body) = send(&env, reqwest::Method::GET, &identity_url, &token, None).await;
    assert_eq!(body["properties"]["clientId"], created.client_id.as_str());
    // IMDS knows neither the old nor the new one on that VM.
    for selector in [
        ("client_id", READER_CLIENT),
        ("client_id", created.client_id.as_str()),
        ("mi_res_id", reader.as_str()),
    ] {
        let (status, body) = imds(&env, &env.imds_node1, selector).await;
        assert_eq!(
            (status, body["error_description"].clone()),
            (400, json!("Identity not found")),
            "{selector:?}"
        );
    }
    // Re-adding what is listed changes nothing (MIC sees it as assigned and sends no PATCH).
    env.cloud
        .assign_identity(&MachineRef::vm("node-1"), &reader)
        .unwrap();
    assert_eq!(
        imds(&env, &env.imds_node1, ("client_id", &created.client_id))
            .await
            .0,
        400
    );
    // The documented fix: remove it from the VM, then assign it again.
    let remove = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {reader.to_lowercase(): null}}});
    let (status, _) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-1"),
        &token,
        Some(remove),
    )
    .await;
    assert_eq!(status, 200);
    let add = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {reader.to_lowercase(): {}}}});
    let (status, body) = send(
        &env,
        reqwest::Method::PATCH,
        &env.vm_url("node-1"),
        &token,
        Some(add),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["identity"]["userAssignedIdentities"][&reader]["clientId"],
        created.client_id.as_str()
    );
    let (status, body) = imds(&env, &env.imds_node1, ("client_id", &created.client_id)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn role_assignments_added_and_removed_at_run_time_decide_blob_access() {
    let env = Env::start().await;
    let spare_on_node1 = identity_id("spare-id");
    env.cloud
        .assign_identity(&MachineRef::vm("node-1"), &spare_on_node1)
        .unwrap();
    let token = env
        .imds_token(
            &env.imds_node1,
            "https://storage.azure.com/",
            Some(SPARE_CLIENT),
        )
        .await;
    let read = || async {
        env.client
            .get(env.blob_url("/data/hello.txt"))
            .bearer_auth(&token)
            .header("x-ms-version", "2021-08-06")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(read().await, 403);
    let grant = RoleAssignment {
        principal_id: SPARE_PRINCIPAL.into(),
        role: BuiltinRole::StorageBlobDataReader,
        scope: account_scope(),
    };
    assert!(env.cloud.add_role_assignment(&grant).unwrap());
    assert!(
        !env.cloud.add_role_assignment(&grant).unwrap(),
        "the same assignment twice is one"
    );
    assert_eq!(read().await, 200);
    assert!(env.cloud.remove_role_assignment(&grant));
    assert!(!env.cloud.remove_role_assignment(&grant));
    assert_eq!(read().await, 403);
}
