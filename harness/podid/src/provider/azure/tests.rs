//! The Azure cloud side against the real mock cloud on loopback: the mock's AAD signs the
//! runner in with a client secret, its ARM holds what the side creates, its Blob holds the
//! blobs. What a user would check (tags, role assignments, what machines hold, that everything
//! is gone afterwards) is checked through the mock's ARM and Blob.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::Duration;

use podid_mocks::{
    ArmBehaviour, BlobSpec, BuiltinRole, CloudSpec, Container, Endpoint, FaultRule, MachineKind,
    MachineRef, MockCloud, RequestFilter, RoleAssignment, ServerHandle, Service, ServicePrincipal,
    SpCredential, StorageAccount, UserAssignedIdentity, VirtualMachine,
};
use podid_scenario::{Cloud, Role};
use serde_json::{Value, json};

use super::*;
use crate::provider::cloud::{CloudNames, CloudSide, RoleChange};
use crate::provider::cluster::Machine;
use crate::provider::error::error_chain;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SUB: &str = "00000000-1111-2222-3333-444444444444";
const RUNNER_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const RUNNER_OBJECT: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const RUNNER_SECRET: &str = "runner-secret-do-not-print";
const FIXTURE_CLIENT: &str = "bbbbbbbb-0000-0000-0000-000000000001";
const FIXTURE_PRINCIPAL: &str = "bbbbbbbb-0000-0000-0000-000000000002";

/// The mock cloud with AAD, ARM and Blob on loopback, and a client that checks it as a user
/// would.
struct MockAzure {
    cloud: MockCloud,
    aad: ServerHandle,
    arm: ServerHandle,
    blob: ServerHandle,
    client: reqwest::Client,
}

fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

fn pool(instance: u32) -> Machine {
    Machine::ScaleSetInstance {
        scale_set: "pool0".into(),
        instance,
    }
}

fn vm() -> Machine {
    Machine::VirtualMachine { name: "vm1".into() }
}

fn pool_id() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/nodes/providers/Microsoft.Compute/virtualMachineScaleSets/pool0"
    )
}

fn vm_id() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/nodes/providers/Microsoft.Compute/virtualMachines/vm1"
    )
}

fn fixture_identity_id() -> String {
    podid_mocks::resource_id::user_assigned_identity(SUB, "fixtures", "fixture-reader")
}

impl MockAzure {
    /// The cloud: the runner's service principal (with `runner_role` on the subscription, if
    /// any), a scale set and a VM of nodes, and fixtures a mapping file can point at.
    async fn start(runner_role: Option<BuiltinRole>) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let machine = |name: &str, kind| VirtualMachine {
            name: name.into(),
            resource_group: "nodes".into(),
            kind,
            system_assigned: None,
            user_assigned: Vec::new(),
            location: "westeurope".into(),
            provisioning_state: "Succeeded".into(),
        };
        let spec = CloudSpec {
            tenant_id: TENANT.into(),
            subscription_id: SUB.into(),
            identities: vec![UserAssignedIdentity {
                name: "fixture-reader".into(),
                resource_group: "fixtures".into(),
                client_id: FIXTURE_CLIENT.into(),
                principal_id: FIXTURE_PRINCIPAL.into(),
            }],
            service_principals: vec![ServicePrincipal {
                name: "podid-runner".into(),
                client_id: RUNNER_CLIENT.into(),
                object_id: RUNNER_OBJECT.into(),
                credential: SpCredential::Secret {
                    secret: RUNNER_SECRET.into(),
                },
            }],
            role_assignments: runner_role
                .map(|role| RoleAssignment {
                    principal_id: RUNNER_OBJECT.into(),
                    role,
                    scope: format!("/subscriptions/{SUB}"),
                })
                .into_iter()
                .collect(),
            storage_accounts: vec![StorageAccount {
                name: "podidfixture".into(),
                resource_group: "fixtures".into(),
                containers: vec![Container {
                    name: "data".into(),
                    blobs: vec![BlobSpec {
                        name: "hello.txt".into(),
                        content: "fixture".into(),
                    }],
                }],
            }],
            machines: vec![
                machine("pool0", MachineKind::ScaleSet { instances: 2 }),
                machine("vm1", MachineKind::Vm),
            ],
            extra_resources: Vec::new(),
        };
        let cloud = MockCloud::new(spec).unwrap();
        let aad = cloud.serve(Endpoint::Aad, loopback()).await.unwrap();
        let arm = cloud.serve(Endpoint::Arm, loopback()).await.unwrap();
        let blob = cloud.serve(Endpoint::Blob, loopback()).await.unwrap();
        let ca = reqwest::Certificate::from_pem(cloud.tls().ca_pem().as_bytes()).unwrap();
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve("management.azure.com", arm.local_addr())
            .no_proxy()
            .build()
            .unwrap();
        Self {
            cloud,
            aad,
            arm,
            blob,
            client,
        }
    }

    fn endpoints(&self) -> AzureEndpoints {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        AzureEndpoints {
            arm: format!(
                "https://management.azure.com:{}",
                self.arm.local_addr().port()
            ),
            arm_audience: "https://management.azure.com/".into(),
            authority: format!(
                "https://login.microsoftonline.com:{}",
                self.aad.local_addr().port()
            ),
            storage_suffix: format!("core.windows.net:{}", self.blob.local_addr().port()),
            extra_ca_pem: Some(self.cloud.tls().ca_pem().to_string()),
            host_overrides: vec![
                ("management.azure.com".into(), localhost),
                ("login.microsoftonline.com".into(), localhost),
                ("*.blob.core.windows.net".into(), localhost),
            ],
        }
    }

    fn config(&self, run_id: &str) -> AzureCloudConfig {
        AzureCloudConfig {
            run_id: run_id.into(),
            subscription_id: SUB.into(),
            tenant_id: Some(TENANT.into()),
            location: "westeurope".into(),
            resource_group: None,
            machines: HashMap::from([(pool(0), pool_id()), (pool(1), pool_id()), (vm(), vm_id())]),
            mapping: None,
            endpoints: self.endpoints(),
            credential: CredentialSource::ClientSecret {
                tenant_id: TENANT.into(),
                client_id: RUNNER_CLIENT.into(),
                secret: Secret::new(RUNNER_SECRET),
            },
            retry: RetryPolicy {
                attempts: 3,
                first_backoff: Duration::from_millis(20),
                max_wait: Duration::from_secs(2),
                operation_timeout: Duration::from_secs(30),
                poll_interval: Duration::from_millis(50),
                propagation_timeout: Duration::from_secs(5),
                propagation_poll: Duration::from_millis(100),
            },
        }
    }

    /// `GET` of an ARM path as a user with the runner's rights would do it: status and body.
    async fn arm_get(&self, path: &str, api_version: &str) -> (u16, Value) {
        let token = self
            .cloud
            .issue_token(&podid_mocks::TokenRequest {
                subject: podid_mocks::TokenSubject::ServicePrincipal {
                    client_id: RUNNER_CLIENT.into(),
                },
                audience: "https://management.azure.com/".into(),
                version: podid_mocks::TokenVersion::V1,
                issued_at: None,
                lifetime_secs: None,
            })
            .unwrap();
        let sep = if path.contains('?') { '&' } else { '?' };
        let resp = self
            .client
            .get(format!(
                "https://management.azure.com:{}{path}{sep}api-version={api_version}",
                self.arm.local_addr().port()
            ))
            .bearer_auth(&token.access_token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The role assignments of `principal` that apply at or below `scope`, as `(role GUID,
    /// scope)`.
    async fn roles_of(&self, principal: &str, scope: &str) -> Vec<(String, String)> {
        let (status, body) = self
            .arm_get(
                &format!("{scope}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId%20eq%20'{principal}'"),
                "2022-04-01",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let p = &a["properties"];
                (
                    resources::last_segment(p["roleDefinitionId"].as_str().unwrap()).to_string(),
                    p["scope"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// ARM writes (PUT, PATCH, DELETE) the mock received since `cursor`.
    fn arm_writes_since(&self, cursor: u64) -> Vec<String> {
        self.cloud
            .requests_matching(&RequestFilter {
                service: Some(Service::Arm),
                since_seq: Some(cursor),
                ..RequestFilter::default()
            })
            .into_iter()
            .filter(|r| r.method != "GET")
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

fn cloud(value: Value) -> Cloud {
    serde_json::from_value(value).unwrap()
}

fn names(suffix: &str) -> CloudNames {
    CloudNames {
        suffix: suffix.into(),
        accounts: [
            ("data".to_string(), format!("data{suffix}x7")),
            ("logs".to_string(), format!("logs{suffix}x7")),
        ]
        .into(),
    }
}

fn guid_role(role: Role) -> String {
    resources::role_definition_guid(role).to_string()
}

#[tokio::test]
async fn a_run_creates_tagged_resources_and_shutdown_removes_them() {
    let mock = MockAzure::start(Some(BuiltinRole::Owner)).await;
    mock.cloud.set_arm_behaviour(ArmBehaviour {
        authorization: true,
        async_polls: 0,
    });
    let side = AzureCloudSide::connect(mock.config("t1")).await.unwrap();
    let rg_path = format!("/subscriptions/{SUB}/resourceGroups/podid-t1");
    let (status, group) = mock.arm_get(&rg_path, "2021-04-01").await;
    assert_eq!(status, 200);
    assert_eq!(group["location"], "westeurope");
    assert_eq!(group["tags"]["podid"], "run");
    assert_eq!(group["tags"]["podid-run"], "t1");
    let created = group["tags"]["podid-created"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    assert_eq!(
        side.environment()[0],
        (
            "cloud".to_string(),
            format!("azure, subscription {SUB}, resource group podid-t1")
        )
    );
    assert_eq!(side.tenant_id(), TENANT);
    assert_eq!(side.runner_object_id(), RUNNER_OBJECT);

    let declared = side
        .declare(
            &cloud(json!({
                "identities": {"reader": {}, "writer": {}},
                "storageAccounts": {"data": {"containers": {"docs": {"b.txt": "hello", "dir/n.txt": "nested"}, "empty": {}}}},
                "roleAssignments": [
                    {"principal": "reader", "role": "Storage Blob Data Reader", "account": "data", "container": "docs"},
                    {"principal": "writer", "role": "Reader"},
                    {"principal": "mic", "role": "Virtual Machine Contributor"},
                ],
            })),
            &names("t1"),
        )
        .await
        .unwrap();
    let reader = declared.identities["reader"].clone();
    let writer = declared.identities["writer"].clone();
    assert_eq!(reader.name, "reader-t1");
    assert!(uuid::Uuid::parse_str(&reader.client_id).is_ok());
    assert!(
        reader
            .resource_id
            .ends_with("/userAssignedIdentities/reader-t1")
    );
    let (status, identity) = mock.arm_get(&reader.resource_id, "2023-01-31").await;
    assert_eq!(status, 200);
    assert_eq!(
        identity["properties"]["clientId"],
        reader.client_id.as_str()
    );
    assert_eq!(identity["tags"]["podid-run"], "t1");
    assert_eq!(identity["tags"]["podid-created"], created);

    let account = "datat1x7";
    let (status, storage) = mock
        .arm_get(
            &resources::storage_account_path(SUB, "podid-t1", account),
            "2023-05-01",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(storage["kind"], "StorageV2");
    assert_eq!(storage["sku"]["name"], "Standard_LRS");
    assert_eq!(storage["tags"]["podid"], "run");
    assert_eq!(
        mock.cloud.blob_content(account, "docs", "b.txt").as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        mock.cloud
            .blob_content(account, "docs", "dir/n.txt")
            .as_deref(),
        Some(&b"nested"[..])
    );
    let (status, _) = mock
        .arm_get(
            &resources::container_path(SUB, "podid-t1", account, "empty"),
            "2023-05-01",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        side.account_url(account),
        format!(
            "https://{account}.blob.core.windows.net:{}",
            mock.blob.local_addr().port()
        )
    );

    let container_scope = resources::container_path(SUB, "podid-t1", account, "docs");
    assert_eq!(
        mock.roles_of(&reader.principal_id, &format!("/subscriptions/{SUB}"))
            .await,
        vec![(
            guid_role(Role::StorageBlobDataReader),
            container_scope.clone()
        )]
    );
    assert_eq!(
        mock.roles_of(&writer.principal_id, &format!("/subscriptions/{SUB}"))
            .await,
        vec![(guid_role(Role::Reader), rg_path.clone())],
        "control-plane roles are granted on the run's group"
    );
    assert!(
        mock.roles_of(RUNNER_OBJECT, &rg_path).await.contains(&(
            guid_role(Role::StorageBlobDataContributor),
            resources::storage_account_path(SUB, "podid-t1", account)
        )),
        "the runner may write the blobs of the account it created"
    );

    // Machines: a long-running update, visible on every instance of the scale set.
    mock.cloud.set_arm_behaviour(ArmBehaviour {
        authorization: true,
        async_polls: 1,
    });
    side.assign_identity(&pool(0), &reader.resource_id)
        .await
        .unwrap();
    side.assign_identity(&pool(1), &reader.resource_id)
        .await
        .unwrap();
    let held = mock
        .cloud
        .assigned_identities(&MachineRef::scale_set_instance("pool0", 1))
        .unwrap();
    assert_eq!(held.len(), 1);
    assert!(resources::same_id(&held[0], &reader.resource_id));
    let seen = side.machine_identities(&pool(1)).await.unwrap();
    assert!(
        seen.user_assigned
            .iter()
            .any(|id| resources::same_id(id, &reader.resource_id))
    );
    assert_eq!(seen.system_assigned, None);
    mock.cloud.set_arm_behaviour(ArmBehaviour {
        authorization: true,
        async_polls: 0,
    });
    side.assign_identity(&vm(), &writer.resource_id)
        .await
        .unwrap();
    side.unassign_identity(&vm(), &writer.resource_id)
        .await
        .unwrap();
    side.unassign_identity(&vm(), &writer.resource_id)
        .await
        .unwrap();
    assert!(
        mock.cloud
            .assigned_identities(&MachineRef::vm("vm1"))
            .unwrap()
            .is_empty()
    );
    let principal = side.enable_system_assigned(&vm()).await.unwrap();
    assert_eq!(side.enable_system_assigned(&vm()).await.unwrap(), principal);
    assert_eq!(
        mock.cloud
            .system_assigned(&MachineRef::vm("vm1"))
            .unwrap()
            .unwrap()
            .principal_id,
        principal
    );
    let refusal = side.disable_system_assigned(&pool(0)).await.unwrap_err();
    assert!(error_chain(&refusal).contains("not enabled by this run"));

    // Roles and identities change mid-scenario.
    let change = RoleChange {
        principal_id: writer.principal_id.clone(),
        role: Role::StorageBlobDataOwner,
        account: Some(account.into()),
        container: None,
    };
    side.change_role(&change, true).await.unwrap();
    side.change_role(&change, true).await.unwrap();
    assert_eq!(
        mock.roles_of(&writer.principal_id, &format!("/subscriptions/{SUB}"))
            .await
            .len(),
        2
    );
    side.change_role(&change, false).await.unwrap();
    side.change_role(&change, false).await.unwrap();
    assert_eq!(
        mock.roles_of(&writer.principal_id, &format!("/subscriptions/{SUB}"))
            .await
            .len(),
        1
    );
    let recreated = side.recreate_identity(&writer).await.unwrap();
    assert_eq!(recreated.resource_id, writer.resource_id);
    assert_ne!(recreated.client_id, writer.client_id);
    let fixture = crate::provider::cloud::IdentityValues {
        name: "fixture-reader".into(),
        client_id: FIXTURE_CLIENT.into(),
        principal_id: FIXTURE_PRINCIPAL.into(),
        resource_id: fixture_identity_id(),
    };
    assert!(
        side.delete_identity(&fixture).await.is_err(),
        "podid deletes only what it created"
    );

    // MIC puts identities on machines too; a deleted identity must not stay listed there.
    mock.cloud
        .assign_identity(&MachineRef::vm("vm1"), &recreated.resource_id)
        .unwrap();

    let report = side.shutdown().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        report.stopped.contains(
            &"azure identity writer-t1 (taken off virtual machine vm1 first)".to_string()
        ),
        "{:?}",
        report.stopped
    );
    assert!(
        report
            .stopped
            .iter()
            .any(|s| s.starts_with("azure resource group podid-t1")),
        "{:?}",
        report.stopped
    );
    assert!(
        report
            .stopped
            .iter()
            .any(|s| s.contains("taken off scale set pool0")),
        "{:?}",
        report.stopped
    );
    let (status, _) = mock.arm_get(&rg_path, "2021-04-01").await;
    assert_eq!(status, 404, "the run's group is gone");
    let (status, _) = mock.arm_get(&reader.resource_id, "2023-01-31").await;
    assert_eq!(status, 404);
    assert!(
        mock.cloud
            .assigned_identities(&MachineRef::scale_set_instance("pool0", 0))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        mock.cloud.system_assigned(&MachineRef::vm("vm1")).unwrap(),
        None
    );
    assert_eq!(mock.cloud.blob_content(account, "docs", "b.txt"), None);
    for principal in [
        &reader.principal_id,
        &recreated.principal_id,
        &RUNNER_OBJECT.to_string(),
    ] {
        let left: Vec<_> = mock
            .roles_of(principal, &format!("/subscriptions/{SUB}"))
            .await
            .into_iter()
            .filter(|(_, scope)| scope != &format!("/subscriptions/{SUB}"))
            .collect();
        assert!(left.is_empty(), "{principal}: {left:?}");
    }
    assert!(
        side.shutdown().await.stopped.is_empty(),
        "a second shutdown has nothing left to do"
    );
}

#[tokio::test]
async fn a_mapping_file_run_creates_nothing() {
    let mock = MockAzure::start(Some(BuiltinRole::Owner)).await;
    let mapping = Mapping::parse(
        std::path::Path::new("map.yaml"),
        &format!(
            "identities:\n  reader:\n    clientId: {FIXTURE_CLIENT}\n    principalId: {FIXTURE_PRINCIPAL}\n    resourceId: {}\nstorageAccounts:\n  data:\n    name: podidfixture\n    note: container data holds hello.txt\nroles: preassigned\n",
            fixture_identity_id()
        ),
    )
    .unwrap();
    let config = AzureCloudConfig {
        resource_group: Some("fixtures".into()),
        mapping: Some(mapping),
        ..mock.config("t2")
    };
    let cursor = mock.cloud.next_seq();
    let side = AzureCloudSide::connect(config).await.unwrap();
    let declared = side
        .declare(
            &cloud(json!({
                "identities": {"reader": {"clientId": FIXTURE_CLIENT}},
                "storageAccounts": {"data": {"containers": {"data": {"hello.txt": "fixture"}}}},
                "roleAssignments": [{"principal": "reader", "role": "Storage Blob Data Reader", "account": "data"}],
            })),
            &names("t2"),
        )
        .await
        .unwrap();
    let reader = &declared.identities["reader"];
    assert_eq!(reader.client_id, FIXTURE_CLIENT);
    assert_eq!(reader.principal_id, FIXTURE_PRINCIPAL);
    assert_eq!(reader.resource_id, fixture_identity_id());
    assert_eq!(reader.name, "fixture-reader");
    assert_eq!(side.mapped_account("data").as_deref(), Some("podidfixture"));
    assert!(
        side.environment()
            .iter()
            .any(|(k, v)| k == "azure mapping" && v.contains("roles preassigned"))
    );
    let report = side.shutdown().await;
    assert!(
        report.errors.is_empty() && report.stopped.is_empty(),
        "{report:?}"
    );
    assert_eq!(mock.arm_writes_since(cursor), Vec::<String>::new());
    let (status, _) = mock
        .arm_get(
            &format!("/subscriptions/{SUB}/resourceGroups/fixtures"),
            "2021-04-01",
        )
        .await;
    assert_eq!(status, 200, "the given group stays");

    let pinned_elsewhere =
        cloud(json!({"identities": {"reader": {"clientId": uuid::Uuid::new_v4().to_string()}}}));
    let err = side
        .declare(&pinned_elsewhere, &names("t2"))
        .await
        .unwrap_err();
    assert!(
        error_chain(&err).contains("mapping file maps it to an identity with clientId"),
        "{}",
        error_chain(&err)
    );
}

#[tokio::test]
async fn scenarios_azure_cannot_serve_are_refused_before_anything_is_created() {
    let mock = MockAzure::start(None).await;
    let side = AzureCloudSide::connect(mock.config("t3")).await.unwrap();
    let cursor = mock.cloud.next_seq();
    let err = side
        .declare(
            &cloud(json!({"identities": {"a": {}}, "servicePrincipals": {"sp": {"secret": "x"}, "cert": {"certificate": true}}})),
            &names("t3"),
        )
        .await
        .unwrap_err();
    let text = error_chain(&err);
    assert!(text.contains("declares service principals (`"), "{text}");
    assert!(text.contains("`sp`") && text.contains("`cert`"), "{text}");
    assert!(
        text.contains("Azure Resource Manager cannot create app registrations"),
        "{text}"
    );
    let err = side
        .declare(&cloud(json!({"identities": {"pinned": {"principalId": uuid::Uuid::new_v4().to_string()}}})), &names("t3"))
        .await
        .unwrap_err();
    assert!(error_chain(&err).contains("map `pinned` to an existing identity in the mapping file"));
    assert_eq!(mock.arm_writes_since(cursor), Vec::<String>::new());
    assert!(
        !side
            .capabilities()
            .has(crate::provider::Capability::ServicePrincipalIdentities)
    );
    assert!(
        !side
            .capabilities()
            .has(crate::provider::Capability::RequestLog)
    );
    assert!(
        side.capabilities()
            .has(crate::provider::Capability::CloudChanges)
    );
    assert!(side.request_log().is_none());
    assert_eq!(side.signing_keys().await.unwrap(), mock.cloud.jwks());
    side.shutdown().await;
}

#[tokio::test]
async fn failures_say_which_operation_and_what_arm_answered() {
    let mock = MockAzure::start(Some(BuiltinRole::Reader)).await;
    mock.cloud.set_arm_behaviour(ArmBehaviour {
        authorization: true,
        async_polls: 0,
    });
    let err = AzureCloudSide::connect(mock.config("t4"))
        .await
        .unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.starts_with(
            "creating resource group podid-t4 in westeurope: 403 AuthorizationFailed: The client"
        ),
        "{text}"
    );
    assert!(
        text.contains("'Microsoft.Resources/subscriptions/resourceGroups/write'"),
        "{text}"
    );

    let wrong = AzureCloudConfig {
        credential: CredentialSource::ClientSecret {
            tenant_id: TENANT.into(),
            client_id: RUNNER_CLIENT.into(),
            secret: Secret::new("wrong-secret-value"),
        },
        ..mock.config("t4")
    };
    let shown = format!("{wrong:?}");
    assert!(
        !shown.contains("wrong-secret-value") && !shown.contains(RUNNER_SECRET),
        "{shown}"
    );
    let err = AzureCloudSide::connect(wrong).await.unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.starts_with(&format!(
            "signing in to Azure with the client secret (client {RUNNER_CLIENT})"
        )),
        "{text}"
    );
    assert!(text.contains("401 invalid_client: AADSTS7000215"), "{text}");
    assert!(!text.contains("wrong-secret-value"), "{text}");
}

#[tokio::test]
async fn throttling_is_retried_after_the_wait_arm_asks_for() {
    let mock = MockAzure::start(None).await;
    let mut throttle = FaultRule::status(
        Service::Arm,
        format!("/subscriptions/{SUB}/resourceGroups/podid-t5"),
        429,
    );
    throttle.method = Some("PUT".into());
    throttle.retry_after = Some("1".into());
    throttle.count = Some(1);
    mock.cloud.add_fault(throttle);
    let started = std::time::Instant::now();
    let side = AzureCloudSide::connect(mock.config("t5")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(
        mock.arm_writes_since(0),
        vec![format!("PUT /subscriptions/{SUB}/resourceGroups/podid-t5"); 2]
    );

    let mut failing = FaultRule::status(
        Service::Arm,
        format!("/subscriptions/{SUB}/resourceGroups/podid-t5/providers/Microsoft.ManagedIdentity"),
        503,
    );
    failing.body = Some(r#"{"error":{"code":"ServiceUnavailable","message":"try later"}}"#.into());
    mock.cloud.add_fault(failing);
    let err = side
        .declare(&cloud(json!({"identities": {"x": {}}})), &names("t5"))
        .await
        .unwrap_err();
    assert_eq!(
        error_chain(&err),
        "creating user-assigned identity x-t5 in resource group podid-t5: 503 ServiceUnavailable: try later"
    );
    let attempts = mock
        .arm_writes_since(0)
        .into_iter()
        .filter(|w| w.contains("userAssignedIdentities"))
        .count();
    assert_eq!(attempts, 3, "as many attempts as the policy allows");
    mock.cloud.clear_faults();
    assert!(side.shutdown().await.errors.is_empty());
}

/// A principal the directory does not know yet (`PrincipalNotFound`, as for an identity made
/// moments ago) is retried for the propagation time, then its last answer is the error; a
/// principal the directory knows is granted at the first attempt.
#[tokio::test]
async fn a_role_for_a_principal_not_yet_in_the_directory_is_retried_while_it_propagates() {
    let mock = MockAzure::start(None).await;
    let mut config = mock.config("t6");
    config.retry.propagation_timeout = Duration::from_millis(600);
    let endpoints = mock.endpoints();
    let http =
        super::http::client(endpoints.extra_ca_pem.as_deref(), &endpoints.host_overrides).unwrap();
    let tokens = std::sync::Arc::new(credential::TokenSource::new(
        config.credential.clone(),
        &endpoints.authority,
        http.clone(),
    ));
    let arm = arm::ArmClient::new(
        http,
        &endpoints.arm,
        &endpoints.arm_audience,
        tokens,
        config.retry.clone(),
    );
    let scope = format!("/subscriptions/{SUB}");
    let assignments = |writes: Vec<String>| {
        writes
            .into_iter()
            .filter(|w| w.contains("roleAssignments"))
            .count()
    };

    let started = std::time::Instant::now();
    let err = resources::create_role_assignment(
        &arm,
        SUB,
        &scope,
        Role::Reader,
        "cccccccc-0000-0000-0000-000000000404",
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("PrincipalNotFound"), "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let tried = assignments(mock.arm_writes_since(0));
    assert!(
        (5..=7).contains(&tried),
        "one attempt per 100 ms for 600 ms, not {tried}"
    );

    let granted =
        resources::create_role_assignment(&arm, SUB, &scope, Role::Reader, FIXTURE_PRINCIPAL, None)
            .await
            .unwrap();
    assert!(
        matches!(granted, resources::Granted::Created { .. }),
        "{granted:?}"
    );
    assert_eq!(assignments(mock.arm_writes_since(0)), tried + 1);
}
