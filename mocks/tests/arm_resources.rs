//! ARM over real HTTPS creating and deleting what a run needs: resource groups with tags,
//! user-assigned identities that IMDS and Blob know at once, role assignments at any scope,
//! storage accounts (a long-running creation) and containers; and what ARM refuses.

mod common;

use common::*;
use podid_mocks::{ArmBehaviour, BuiltinRole, RoleAssignment};
use reqwest::Method;
use serde_json::{Value, json};

const RUN_RG: &str = "podid-run1";
const NEW_ACCOUNT: &str = "podidrun1data";
const API_RG: &str = "2021-04-01";
const API_MSI: &str = "2023-01-31";
const API_RBAC: &str = "2022-04-01";
const API_STORAGE: &str = "2023-05-01";

/// One answer: status, headers and JSON body (`null` when empty).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// A client like the fixture's, which also resolves the account this file creates.
fn client(env: &Env) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(env.cloud.tls().ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("login.microsoftonline.com", env.aad.local_addr())
        .resolve("management.azure.com", env.arm.local_addr())
        .resolve(
            &format!("{NEW_ACCOUNT}.blob.core.windows.net"),
            env.blob.local_addr(),
        )
        .no_proxy()
        .build()
        .unwrap()
}

/// A token of the secret service principal from the AAD v2 endpoint, for `scope`.
async fn sp_token(env: &Env, scope: &str) -> String {
    let resp = client(env)
        .post(env.aad_url(&format!("/{TENANT}/oauth2/v2.0/token")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SP_SECRET_CLIENT),
            ("client_secret", SP_SECRET),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn call(env: &Env, method: Method, url: &str, token: &str, body: Option<Value>) -> Answer {
    let mut req = client(env).request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn url(env: &Env, path: &str, api: &str) -> String {
    env.arm_url(&format!("{path}?api-version={api}"))
}

fn rg_path(rg: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}")
}

fn identity_path(rg: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        rg_path(rg)
    )
}

fn account_path(rg: &str, account: &str) -> String {
    format!(
        "{}/providers/Microsoft.Storage/storageAccounts/{account}",
        rg_path(rg)
    )
}

fn assignment_path(scope: &str, name: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
}

fn assignment_body(role: BuiltinRole, principal: &str, principal_type: Option<&str>) -> Value {
    let mut props = json!({
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{}", role.definition_id()),
        "principalId": principal,
    });
    if let Some(t) = principal_type {
        props["principalType"] = json!(t);
    }
    json!({"properties": props})
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Follows a 202's `Location` once (the mock finishes before it answers).
async fn poll_location(env: &Env, answer: &Answer, token: &str) -> Answer {
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.headers["retry-after"], "1");
    let location = answer.headers["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&env.arm_url(&format!("/subscriptions/{SUB}/operationresults/"))),
        "{location}"
    );
    call(env, Method::GET, &location, token, None).await
}

/// Creates the run's group with the tags podid puts on it.
async fn create_run_group(env: &Env, token: &str) -> Answer {
    call(
        env,
        Method::PUT,
        &url(env, &rg_path(RUN_RG), API_RG),
        token,
        Some(json!({"location": "westeurope", "tags": {"podid": "run", "podid-run": "run1"}})),
    )
    .await
}

#[tokio::test]
async fn a_run_creates_what_it_needs_and_deleting_its_group_removes_it() {
    let env = Env::start().await;
    let arm = sp_token(&env, "https://management.azure.com/.default").await;

    let created = create_run_group(&env, &arm).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["tags"]["podid-run"], "run1");
    let again = create_run_group(&env, &arm).await;
    assert_eq!(again.status, 200, "PUT of an existing group updates it");
    let read = call(
        &env,
        Method::GET,
        &url(&env, &rg_path(RUN_RG), API_RG),
        &arm,
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["location"], "westeurope");
    assert_eq!(
        read.body["tags"],
        json!({"podid": "run", "podid-run": "run1"})
    );
    let moved = call(
        &env,
        Method::PUT,
        &url(&env, &rg_path(RUN_RG), API_RG),
        &arm,
        Some(json!({"location": "eastus"})),
    )
    .await;
    assert_eq!(
        (moved.status, moved.body["error"]["code"].clone()),
        (409, json!("InvalidResourceGroupLocation"))
    );

    // An identity: new ids, usable on a machine and at IMDS at once.
    let identity_url = url(&env, &identity_path(RUN_RG, "reader-run1"), API_MSI);
    let body = json!({"location": "westeurope", "tags": {"podid-run": "run1"}});
    let identity = call(&env, Method::PUT, &identity_url, &arm, Some(body.clone())).await;
    assert_eq!(identity.status, 201, "{}", identity.body);
    let client_id = identity.body["properties"]["clientId"]
        .as_str()
        .unwrap()
        .to_string();
    let principal_id = identity.body["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        uuid::Uuid::parse_str(&client_id).is_ok() && uuid::Uuid::parse_str(&principal_id).is_ok()
    );
    assert_eq!(identity.body["tags"]["podid-run"], "run1");
    let same = call(&env, Method::PUT, &identity_url, &arm, Some(body)).await;
    assert_eq!(same.status, 200);
    assert_eq!(same.body["properties"]["clientId"], client_id.as_str());
    let identity_id = identity.body["id"].as_str().unwrap().to_string();
    let patch = call(
        &env,
        Method::PATCH,
        &env.vm_url("node-1"),
        &arm,
        Some(json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id.clone(): {}}}})),
    )
    .await;
    assert_eq!(patch.status, 200, "{}", patch.body);
    let imds = env
        .imds_token(
            &env.imds_node1,
            "https://storage.azure.com/",
            Some(&client_id),
        )
        .await;
    let claims = env
        .verify_with_published_jwks(
            &imds,
            "https://storage.azure.com/",
            &format!("https://sts.windows.net/{TENANT}/"),
        )
        .await;
    assert_eq!(claims["oid"], principal_id.as_str());

    // A storage account (long-running) with a container the identity may read.
    let account_url = url(&env, &account_path(RUN_RG, NEW_ACCOUNT), API_STORAGE);
    let accepted = call(
        &env,
        Method::PUT,
        &account_url,
        &arm,
        Some(json!({
            "location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"},
            "tags": {"podid-run": "run1"}, "properties": {"allowSharedKeyAccess": false},
        })),
    )
    .await;
    let done = poll_location(&env, &accepted, &arm).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.body["name"], NEW_ACCOUNT);
    assert_eq!(done.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(done.body["properties"]["allowSharedKeyAccess"], false);
    assert_eq!(
        done.body["properties"]["primaryEndpoints"]["blob"],
        format!("https://{NEW_ACCOUNT}.blob.core.windows.net/")
    );
    let read = call(&env, Method::GET, &account_url, &arm, None).await;
    assert_eq!(read.body["tags"]["podid-run"], "run1");
    let container_scope = format!(
        "{}/blobServices/default/containers/data",
        account_path(RUN_RG, NEW_ACCOUNT)
    );
    let container = call(
        &env,
        Method::PUT,
        &url(&env, &container_scope, API_STORAGE),
        &arm,
        Some(json!({"properties": {"publicAccess": "None"}})),
    )
    .await;
    assert_eq!(container.status, 201, "{}", container.body);
    let name = guid();
    let assigned = call(
        &env,
        Method::PUT,
        &url(&env, &assignment_path(&container_scope, &name), API_RBAC),
        &arm,
        Some(assignment_body(
            BuiltinRole::StorageBlobDataReader,
            &principal_id,
            Some("ServicePrincipal"),
        )),
    )
    .await;
    assert_eq!(assigned.status, 201, "{}", assigned.body);
    assert_eq!(assigned.body["name"], name.as_str());
    assert_eq!(
        assigned.body["properties"]["scope"],
        container_scope.as_str()
    );
    let blob_url = format!(
        "https://{NEW_ACCOUNT}.blob.core.windows.net:{}/data?restype=container&comp=list",
        env.blob.local_addr().port()
    );
    let list = client(&env)
        .get(&blob_url)
        .bearer_auth(&imds)
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .unwrap();
    assert_eq!(
        list.status(),
        200,
        "the new role lets the new identity list"
    );
    let listed = call(
        &env,
        Method::GET,
        &env.arm_url(&format!(
            "{}/providers/Microsoft.Authorization/roleAssignments?api-version={API_RBAC}&$filter=principalId%20eq%20'{principal_id}'",
            rg_path(RUN_RG)
        )),
        &arm,
        None,
    )
    .await;
    let names: Vec<&str> = listed.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![name.as_str()]);

    // Deleting the group takes everything in it away.
    let deleting = call(
        &env,
        Method::DELETE,
        &url(&env, &rg_path(RUN_RG), API_RG),
        &arm,
        None,
    )
    .await;
    let done = poll_location(&env, &deleting, &arm).await;
    assert_eq!(done.status, 200);
    let gone = call(
        &env,
        Method::GET,
        &url(&env, &rg_path(RUN_RG), API_RG),
        &arm,
        None,
    )
    .await;
    assert_eq!(
        (gone.status, gone.body["error"]["code"].clone()),
        (404, json!("ResourceGroupNotFound"))
    );
    let vm = call(&env, Method::GET, &env.vm_url("node-1"), &arm, None).await;
    let held = vm.body["identity"]["userAssignedIdentities"]
        .as_object()
        .unwrap();
    assert!(
        !held.keys().any(|k| k.eq_ignore_ascii_case(&identity_id)),
        "the deleted identity left the machine: {held:?}"
    );
    let assignment = call(
        &env,
        Method::GET,
        &url(
            &env,
            &assignment_path(&format!("/subscriptions/{SUB}"), &name),
            API_RBAC,
        ),
        &arm,
        None,
    )
    .await;
    assert_eq!(assignment.status, 404);
    let list = client(&env)
        .get(&blob_url)
        .bearer_auth(&imds)
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 404, "the account went with its group");
    assert!(env.cloud.blob_content(NEW_ACCOUNT, "data", "x").is_none());
    let again = call(
        &env,
        Method::DELETE,
        &url(&env, &rg_path(RUN_RG), API_RG),
        &arm,
        None,
    )
    .await;
    assert_eq!(again.status, 404);
}

#[tokio::test]
async fn identities_are_deleted_alone_and_need_a_location() {
    let env = Env::start().await;
    let arm = sp_token(&env, "https://management.azure.com/.default").await;
    create_run_group(&env, &arm).await;
    let identity_url = url(&env, &identity_path(RUN_RG, "spare-run1"), API_MSI);
    let missing = call(&env, Method::PUT, &identity_url, &arm, Some(json!({}))).await;
    assert_eq!(
        (missing.status, missing.body["error"]["code"].clone()),
        (400, json!("LocationRequired"))
    );
    let bad = call(
        &env,
        Method::PUT,
        &url(&env, &identity_path(RUN_RG, "no spaces"), API_MSI),
        &arm,
        Some(json!({"location": "eastus"})),
    )
    .await;
    assert_eq!(bad.status, 400);
    let elsewhere = call(
        &env,
        Method::PUT,
        &url(&env, &identity_path("no-such-group", "x-run1"), API_MSI),
        &arm,
        Some(json!({"location": "eastus"})),
    )
    .await;
    assert_eq!(elsewhere.body["error"]["code"], "ResourceGroupNotFound");
    let created = call(
        &env,
        Method::PUT,
        &identity_url,
        &arm,
        Some(json!({"location": "eastus"})),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        call(&env, Method::DELETE, &identity_url, &arm, None)
            .await
            .status,
        200
    );
    let gone = call(&env, Method::GET, &identity_url, &arm, None).await;
    assert_eq!(
        (gone.status, gone.body["error"]["code"].clone()),
        (404, json!("ResourceNotFound"))
    );
    assert_eq!(
        call(&env, Method::DELETE, &identity_url, &arm, None)
            .await
            .status,
        204
    );
    let recreated = call(
        &env,
        Method::PUT,
        &identity_url,
        &arm,
        Some(json!({"location": "eastus"})),
    )
    .await;
    assert_ne!(
        recreated.body["properties"]["clientId"], created.body["properties"]["clientId"],
        "a new identity of the same name is a new principal"
    );
}

#[tokio::test]
async fn role_assignments_are_refused_the_way_azure_refuses_them() {
    let env = Env::start().await;
    let arm = sp_token(&env, "https://management.azure.com/.default").await;
    let account_scope = account_scope();
    let at = |name: &str| url(&env, &assignment_path(&account_scope, name), API_RBAC);

    let unknown_role = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{}", guid()),
        "principalId": SPARE_PRINCIPAL,
    }});
    let answer = call(&env, Method::PUT, &at(&guid()), &arm, Some(unknown_role)).await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].clone()),
        (400, json!("RoleDefinitionDoesNotExist"))
    );
    let stranger = guid();
    let body = assignment_body(BuiltinRole::StorageBlobDataReader, &stranger, None);
    let answer = call(&env, Method::PUT, &at(&guid()), &arm, Some(body)).await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].clone()),
        (400, json!("PrincipalNotFound"))
    );
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("principalType")
    );
    let body = assignment_body(
        BuiltinRole::StorageBlobDataReader,
        &stranger,
        Some("ServicePrincipal"),
    );
    let answer = call(&env, Method::PUT, &at(&guid()), &arm, Some(body)).await;
    assert_eq!(
        answer.status, 201,
        "a principal type skips the directory lookup"
    );
    assert_eq!(
        call(
            &env,
            Method::PUT,
            &at("not-a-guid"),
            &arm,
            Some(assignment_body(BuiltinRole::Reader, SPARE_PRINCIPAL, None))
        )
        .await
        .body["error"]["code"],
        "InvalidRoleAssignmentId"
    );

    let name = guid();
    let body = assignment_body(
        BuiltinRole::StorageBlobDataContributor,
        SPARE_PRINCIPAL,
        None,
    );
    let created = call(&env, Method::PUT, &at(&name), &arm, Some(body.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let again = call(&env, Method::PUT, &at(&name), &arm, Some(body.clone())).await;
    assert_eq!(
        again.status, 200,
        "the same assignment again changes nothing"
    );
    assert_eq!(
        created.body["properties"]["roleDefinitionId"],
        format!(
            "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{}",
            BuiltinRole::StorageBlobDataContributor.definition_id()
        )
    );
    let twin = call(&env, Method::PUT, &at(&guid()), &arm, Some(body.clone())).await;
    assert_eq!(
        (twin.status, twin.body["error"]["code"].clone()),
        (409, json!("RoleAssignmentExists"))
    );
    let changed = assignment_body(BuiltinRole::StorageBlobDataOwner, SPARE_PRINCIPAL, None);
    let answer = call(&env, Method::PUT, &at(&name), &arm, Some(changed)).await;
    assert_eq!(
        (answer.status, answer.body["error"]["code"].clone()),
        (409, json!("RoleAssignmentUpdateNotPermitted"))
    );
    let spec_assignment = RoleAssignment {
        principal_id: SPARE_PRINCIPAL.into(),
        role: BuiltinRole::StorageBlobDataContributor,
        scope: account_scope.clone(),
    };
    assert!(
        env.cloud.remove_role_assignment(&spec_assignment),
        "the ARM assignment is the mock's"
    );
    assert_eq!(
        call(&env, Method::GET, &at(&name), &arm, None).await.status,
        404
    );
    assert_eq!(
        call(&env, Method::PUT, &at(&name), &arm, Some(body))
            .await
            .status,
        201
    );
    let deleted = call(&env, Method::DELETE, &at(&name), &arm, None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body["name"], name.as_str());
    assert_eq!(
        call(&env, Method::DELETE, &at(&name), &arm, None)
            .await
            .status,
        204
    );

    // The spec's assignments are listed under a stable derived name and can be deleted by it.
    let listed = call(
        &env,
        Method::GET,
        &env.arm_url(&format!(
            "{account_scope}/providers/Microsoft.Authorization/roleAssignments?api-version={API_RBAC}&$filter=principalId%20eq%20'{READER_PRINCIPAL}'"
        )),
        &arm,
        None,
    )
    .await;
    let value = listed.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{}", listed.body);
    let derived = value[0]["name"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(derived).is_ok());
    assert_eq!(
        call(&env, Method::DELETE, &at(derived), &arm, None)
            .await
            .status,
        200
    );
    let storage = env
        .imds_token(
            &env.imds_node1,
            "https://storage.azure.com/",
            Some(READER_CLIENT),
        )
        .await;
    let read = env
        .client
        .get(env.blob_url("/data/hello.txt"))
        .bearer_auth(&storage)
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 403, "the reader lost its only role");

    let missing_group = format!("/subscriptions/{SUB}/resourceGroups/nowhere");
    let answer = call(
        &env,
        Method::PUT,
        &url(&env, &assignment_path(&missing_group, &guid()), API_RBAC),
        &arm,
        Some(assignment_body(BuiltinRole::Reader, SPARE_PRINCIPAL, None)),
    )
    .await;
    assert_eq!(answer.body["error"]["code"], "ResourceGroupNotFound");
    let missing_container = format!("{account_scope}/blobServices/default/containers/nothing");
    let answer = call(
        &env,
        Method::PUT,
        &url(
            &env,
            &assignment_path(&missing_container, &guid()),
            API_RBAC,
        ),
        &arm,
        Some(assignment_body(BuiltinRole::Reader, SPARE_PRINCIPAL, None)),
    )
    .await;
    assert_eq!(answer.status, 404);
}

#[tokio::test]
async fn with_authorization_contributors_create_resources_but_only_owners_grant_roles() {
    let env = Env::start().await;
    env.cloud.set_arm_behaviour(ArmBehaviour {
        authorization: true,
        async_polls: 0,
    });
    let arm = sp_token(&env, "https://management.azure.com/.default").await;
    let refused = create_run_group(&env, &arm).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].clone()),
        (403, json!("AuthorizationFailed"))
    );
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Microsoft.Resources/subscriptions/resourceGroups/write'")
    );
    let contributor = RoleAssignment {
        principal_id: SP_SECRET_OBJECT.into(),
        role: BuiltinRole::Contributor,
        scope: format!("/subscriptions/{SUB}"),
    };
    env.cloud.add_role_assignment(&contributor).unwrap();
    assert_eq!(create_run_group(&env, &arm).await.status, 201);
    let identity = call(
        &env,
        Method::PUT,
        &url(&env, &identity_path(RUN_RG, "reader-run1"), API_MSI),
        &arm,
        Some(json!({"location": "westeurope"})),
    )
    .await;
    assert_eq!(identity.status, 201);
    let principal = identity.body["properties"]["principalId"].as_str().unwrap();
    let grant = url(&env, &assignment_path(&rg_path(RUN_RG), &guid()), API_RBAC);
    let body = assignment_body(
        BuiltinRole::StorageBlobDataReader,
        principal,
        Some("ServicePrincipal"),
    );
    let refused = call(&env, Method::PUT, &grant, &arm, Some(body.clone())).await;
    assert_eq!(
        refused.status, 403,
        "Contributor's NotActions exclude role assignments"
    );
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Microsoft.Authorization/roleAssignments/write'")
    );
    env.cloud
        .add_role_assignment(&RoleAssignment {
            role: BuiltinRole::Owner,
            ..contributor
        })
        .unwrap();
    assert_eq!(
        call(&env, Method::PUT, &grant, &arm, Some(body))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn storage_names_are_checked_and_global() {
    let env = Env::start().await;
    let arm = sp_token(&env, "https://management.azure.com/.default").await;
    create_run_group(&env, &arm).await;
    let body =
        json!({"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}});
    let bad = call(
        &env,
        Method::PUT,
        &url(&env, &account_path(RUN_RG, "Not-Valid"), API_STORAGE),
        &arm,
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (bad.status, bad.body["error"]["code"].clone()),
        (400, json!("AccountNameInvalid"))
    );
    let taken = call(
        &env,
        Method::PUT,
        &url(&env, &account_path(RUN_RG, ACCOUNT), API_STORAGE),
        &arm,
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (taken.status, taken.body["error"]["code"].clone()),
        (409, json!("StorageAccountAlreadyTaken"))
    );
    let same = call(
        &env,
        Method::PUT,
        &url(&env, &account_path(RG, ACCOUNT), API_STORAGE),
        &arm,
        Some(json!({"location": "eastus", "tags": {"k": "v"}})),
    )
    .await;
    assert_eq!(same.status, 200, "an existing account is updated in place");
    assert_eq!(
        env.cloud
            .blob_content(ACCOUNT, "data", "hello.txt")
            .as_deref(),
        Some(BLOB_TEXT.as_bytes()),
        "updating an account keeps its blobs"
    );
    let orphan = call(
        &env,
        Method::PUT,
        &url(
            &env,
            &format!(
                "{}/blobServices/default/containers/data",
                account_path(RUN_RG, "nosuchacct")
            ),
            API_STORAGE,
        ),
        &arm,
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (orphan.status, orphan.body["error"]["code"].clone()),
        (404, json!("ParentResourceNotFound"))
    );
    let container = |name: &str| {
        url(
            &env,
            &format!(
                "{}/blobServices/default/containers/{name}",
                account_path(RG, ACCOUNT)
            ),
            API_STORAGE,
        )
    };
    assert_eq!(
        call(
            &env,
            Method::PUT,
            &container("Bad_Name"),
            &arm,
            Some(json!({}))
        )
        .await
        .status,
        400
    );
    assert_eq!(
        call(&env, Method::PUT, &container("data"), &arm, Some(json!({})))
            .await
            .status,
        200
    );
    assert_eq!(
        call(
            &env,
            Method::PUT,
            &container("fresh"),
            &arm,
            Some(json!({}))
        )
        .await
        .status,
        201
    );
    assert_eq!(
        call(&env, Method::DELETE, &container("fresh"), &arm, None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&env, Method::GET, &container("fresh"), &arm, None)
            .await
            .status,
        404
    );
}
