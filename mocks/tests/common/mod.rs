//! Shared fixture for the integration tests: one mock cloud with all services on loopback and
//! a reqwest client that trusts only the run's CA and resolves Azure host names to the mocks.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use podid_mocks::*;
use sha1::Digest;

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SUB: &str = "00000000-1111-2222-3333-444444444444";
pub const RG: &str = "rg-podid";
pub const ACCOUNT: &str = "podiddata";
pub const BLOB_TEXT: &str = "hello from the mock";

pub const READER_CLIENT: &str = "11111111-0000-0000-0000-000000000001";
pub const READER_PRINCIPAL: &str = "22222222-0000-0000-0000-000000000001";
pub const WRITER_CLIENT: &str = "11111111-0000-0000-0000-000000000002";
pub const WRITER_PRINCIPAL: &str = "22222222-0000-0000-0000-000000000002";
pub const SPARE_CLIENT: &str = "11111111-0000-0000-0000-000000000003";
pub const SPARE_PRINCIPAL: &str = "22222222-0000-0000-0000-000000000003";
pub const SYS_CLIENT: &str = "55555555-0000-0000-0000-000000000001";
pub const SYS_PRINCIPAL: &str = "66666666-0000-0000-0000-000000000001";

pub const SP_SECRET_CLIENT: &str = "33333333-0000-0000-0000-000000000001";
pub const SP_SECRET_OBJECT: &str = "44444444-0000-0000-0000-000000000001";
pub const SP_SECRET: &str = "correct-horse-battery-staple";
pub const SP_CERT_CLIENT: &str = "33333333-0000-0000-0000-000000000002";
pub const SP_CERT_OBJECT: &str = "44444444-0000-0000-0000-000000000002";

pub fn identity_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

pub fn account_scope() -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}"
    )
}

/// An RSA certificate and its private key, as a service principal's credential.
pub struct SpCert {
    pub cert_pem: String,
    pub key: EncodingKey,
    pub x5t: String,
}

pub fn sp_cert() -> SpCert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "podid-test-sp");
    let cert = params.self_signed(&key).unwrap();
    SpCert {
        cert_pem: cert.pem(),
        key: EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap(),
        x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(cert.der())),
    }
}

pub fn spec(cert_pem: &str) -> CloudSpec {
    let id = |name: &str, client: &str, principal: &str| UserAssignedIdentity {
        name: name.into(),
        resource_group: RG.into(),
        client_id: client.into(),
        principal_id: principal.into(),
    };
    CloudSpec {
        tenant_id: TENANT.into(),
        subscription_id: SUB.into(),
        identities: vec![
            id("reader-id", READER_CLIENT, READER_PRINCIPAL),
            id("writer-id", WRITER_CLIENT, WRITER_PRINCIPAL),
            id("spare-id", SPARE_CLIENT, SPARE_PRINCIPAL),
        ],
        service_principals: vec![
            ServicePrincipal {
                name: "secret-sp".into(),
                client_id: SP_SECRET_CLIENT.into(),
                object_id: SP_SECRET_OBJECT.into(),
                credential: SpCredential::Secret {
                    secret: SP_SECRET.into(),
                },
            },
            ServicePrincipal {
                name: "cert-sp".into(),
                client_id: SP_CERT_CLIENT.into(),
                object_id: SP_CERT_OBJECT.into(),
                credential: SpCredential::Certificate {
                    cert_pem: cert_pem.into(),
                },
            },
        ],
        role_assignments: vec![
            RoleAssignment {
                principal_id: READER_PRINCIPAL.into(),
                role: BuiltinRole::StorageBlobDataReader,
                scope: account_scope(),
            },
            RoleAssignment {
                principal_id: WRITER_PRINCIPAL.into(),
                role: BuiltinRole::StorageBlobDataContributor,
                scope: format!("/subscriptions/{SUB}/resourceGroups/{RG}"),
            },
            RoleAssignment {
                principal_id: SP_SECRET_OBJECT.into(),
                role: BuiltinRole::StorageBlobDataReader,
                scope: format!("{}/blobServices/default/containers/data", account_scope()),
            },
            RoleAssignment {
                principal_id: SP_CERT_OBJECT.into(),
                role: BuiltinRole::Owner,
                scope: format!("/subscriptions/{SUB}"),
            },
        ],
        storage_accounts: vec![StorageAccount {
            name: ACCOUNT.into(),
            resource_group: RG.into(),
            containers: vec![
                Container {
                    name: "data".into(),
                    blobs: vec![BlobSpec {
                        name: "hello.txt".into(),
                        content: BLOB_TEXT.into(),
                    }],
                },
                Container {
                    name: "other".into(),
                    blobs: vec![],
                },
            ],
        }],
        machines: vec![
            VirtualMachine {
                name: "node-1".into(),
                resource_group: RG.into(),
                kind: MachineKind::Vm,
                system_assigned: None,
                user_assigned: vec![identity_id("reader-id"), identity_id("writer-id")],
                location: "eastus".into(),
                provisioning_state: "Succeeded".into(),
            },
            VirtualMachine {
                name: "node-2".into(),
                resource_group: RG.into(),
                kind: MachineKind::Vm,
                system_assigned: Some(SystemAssignedIdentity {
                    principal_id: SYS_PRINCIPAL.into(),
                    client_id: SYS_CLIENT.into(),
                }),
                user_assigned: vec![],
                location: "westeurope".into(),
                provisioning_state: "Succeeded".into(),
            },
            VirtualMachine {
                name: "pool".into(),
                resource_group: RG.into(),
                kind: MachineKind::ScaleSet { instances: 2 },
                system_assigned: None,
                user_assigned: vec![],
                location: "eastus".into(),
                provisioning_state: "Succeeded".into(),
            },
        ],
        extra_resources: vec![],
    }
}

/// MIC's pattern for identity IDs in an ARM error (aad-pod-identity v1.8.17
/// pkg/cloudprovider/cloudprovider.go, `userAssignedIdentitiesPattern`).
pub const MIC_ERROR_IDS: &str = r"'(,?(?i)/subscriptions/[a-zA-Z0-9-_]+/resourcegroups/[a-zA-Z0-9-_]+/providers/Microsoft.ManagedIdentity/userAssignedIdentities/[a-zA-Z0-9-_]+)+'";

/// What MIC extracts from an error text before dropping those IDs and retrying.
pub fn mic_extracted_ids(message: &str) -> Vec<String> {
    let re = regex::Regex::new(MIC_ERROR_IDS).unwrap();
    let Some(m) = re.find(message) else {
        return Vec::new();
    };
    let quoted = m.as_str();
    quoted[1..quoted.len() - 1]
        .split(',')
        .map(str::to_string)
        .collect()
}

pub fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// All services of one cloud, running.
pub struct Env {
    pub cloud: MockCloud,
    pub cert: SpCert,
    pub aad: ServerHandle,
    pub arm: ServerHandle,
    pub blob: ServerHandle,
    pub imds_node1: ServerHandle,
    pub imds_node2: ServerHandle,
    pub imds_pool1: ServerHandle,
    pub client: reqwest::Client,
}

pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

impl Env {
    pub async fn start() -> Env {
        init_crypto();
        let cert = sp_cert();
        let cloud = MockCloud::new(spec(&cert.cert_pem)).unwrap();
        let aad = cloud.serve(Endpoint::Aad, loopback()).await.unwrap();
        let arm = cloud.serve(Endpoint::Arm, loopback()).await.unwrap();
        let blob = cloud.serve(Endpoint::Blob, loopback()).await.unwrap();
        let imds = |m: MachineRef, label: &str| Endpoint::Imds {
            machine: m,
            label: label.into(),
        };
        let imds_node1 = cloud
            .serve(imds(MachineRef::vm("node-1"), "node-1"), loopback())
            .await
            .unwrap();
        let imds_node2 = cloud
            .serve(imds(MachineRef::vm("node-2"), "node-2"), loopback())
            .await
            .unwrap();
        let imds_pool1 = cloud
            .serve(
                imds(MachineRef::scale_set_instance("pool", 1), "pool-1"),
                loopback(),
            )
            .await
            .unwrap();
        let client = client_for(
            &cloud,
            aad.local_addr(),
            arm.local_addr(),
            blob.local_addr(),
        );
        Env {
            cloud,
            cert,
            aad,
            arm,
            blob,
            imds_node1,
            imds_node2,
            imds_pool1,
            client,
        }
    }

    pub fn aad_url(&self, path: &str) -> String {
        format!(
            "https://login.microsoftonline.com:{}{path}",
            self.aad.local_addr().port()
        )
    }

    pub fn arm_url(&self, path: &str) -> String {
        format!(
            "https://management.azure.com:{}{path}",
            self.arm.local_addr().port()
        )
    }

    pub fn blob_url(&self, path: &str) -> String {
        format!(
            "https://{ACCOUNT}.blob.core.windows.net:{}{path}",
            self.blob.local_addr().port()
        )
    }

    pub fn vm_url(&self, name: &str) -> String {
        self.arm_url(&format!(
            "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{name}?api-version=2019-12-01"
        ))
    }

    /// Token from the IMDS of `imds` for `resource`, selecting by client id if given.
    pub async fn imds_token(
        &self,
        imds: &ServerHandle,
        resource: &str,
        client_id: Option<&str>,
    ) -> String {
        let mut q = vec![("api-version", "2018-02-01"), ("resource", resource)];
        if let Some(c) = client_id {
            q.push(("client_id", c));
        }
        let resp = self
            .client
            .get(format!("{}/metadata/identity/oauth2/token", imds.url()))
            .header("Metadata", "true")
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "IMDS token request failed");
        let body: serde_json::Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Fetches the tenant JWKS from the mock AAD and verifies `token` independently.
    pub async fn verify_with_published_jwks(
        &self,
        token: &str,
        audience: &str,
        issuer: &str,
    ) -> serde_json::Value {
        let jwks: JwkSet = self
            .client
            .get(self.aad_url(&format!("/{TENANT}/discovery/v2.0/keys")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        let kid = header.kid.expect("token has a kid");
        let jwk = jwks.find(&kid).expect("kid is published in the JWKS");
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[audience]);
        v.set_issuer(&[issuer]);
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .unwrap()
            .claims
    }
}

/// A client trusting only the run's CA, resolving Azure names to the mocks.
pub fn client_for(
    cloud: &MockCloud,
    aad: SocketAddr,
    arm: SocketAddr,
    blob: SocketAddr,
) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(cloud.tls().ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("login.microsoftonline.com", aad)
        .resolve("management.azure.com", arm)
        .resolve(&format!("{ACCOUNT}.blob.core.windows.net"), blob)
        .resolve("newacct.blob.core.windows.net", blob)
        .no_proxy()
        .build()
        .unwrap()
}

/// Checks a successful IMDS token answer as SDKs and NMI rely on it: all eight fields present,
/// every value a JSON string, and the identity, resource, type and lifetime as expected.
pub fn assert_imds_token_body(body: &serde_json::Value, client_id: &str, resource: &str) {
    let fields = body.as_object().expect("the IMDS answer is a JSON object");
    for key in [
        "access_token",
        "client_id",
        "expires_in",
        "expires_on",
        "ext_expires_in",
        "not_before",
        "resource",
        "token_type",
    ] {
        assert!(
            fields.get(key).is_some_and(serde_json::Value::is_string),
            "IMDS `{key}` must be a JSON string: {body}"
        );
    }
    assert!(
        fields.values().all(serde_json::Value::is_string),
        "every IMDS field is a string: {body}"
    );
    assert_eq!(body["client_id"], client_id);
    assert_eq!(body["resource"], resource);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], "86399");
}

/// An ARM token of node-2's system-assigned identity, which stands in for MIC's identity.
pub async fn arm_token(env: &Env) -> String {
    env.imds_token(&env.imds_node2, "https://management.azure.com/", None)
        .await
}

/// Scale set `pool`'s URL with the api-version MIC sends.
pub fn vmss_url(env: &Env) -> String {
    env.arm_url(&format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/pool?api-version=2019-12-01"
    ))
}

/// An authenticated ARM request; its status and JSON body (`null` when it has none).
pub async fn arm_send(
    env: &Env,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = env.client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}
