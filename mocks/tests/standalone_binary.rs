//! The real `mock-azure` binary, started the way a user starts it (`serve --config … --ca-out …`,
//! every service on 127.0.0.1 port 0), answers a real HTTPS/HTTP client: AAD v1 and v2 tokens,
//! IMDS managed-identity tokens, a Blob read with the IMDS token, and the usual Azure errors.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TENANT: &str = "0b7e5a1c-3d2f-4e6a-9b8c-1d2e3f4a5b6c";
const SUB: &str = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d";
const RG: &str = "rg-standalone";
const ACCOUNT: &str = "standalonedata";
const CONTAINER: &str = "docs";
const BLOB: &str = "greeting.txt";
const BLOB_TEXT: &str = "served by the mock-azure binary";
const MACHINE: &str = "node-a";

const READER_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const READER_PRINCIPAL: &str = "bbbbbbbb-0000-0000-0000-000000000001";
const NOROLE_CLIENT: &str = "aaaaaaaa-0000-0000-0000-000000000002";
const NOROLE_PRINCIPAL: &str = "bbbbbbbb-0000-0000-0000-000000000002";
const SP_CLIENT: &str = "cccccccc-0000-0000-0000-000000000001";
const SP_OBJECT: &str = "dddddddd-0000-0000-0000-000000000001";
const SP_SECRET: &str = "standalone-s3cret";

const STORAGE: &str = "https://storage.azure.com/";
const X_MS_VERSION: &str = "2021-08-06";

fn config_yaml() -> String {
    let identity = |name: &str| {
        format!(
            "/subscriptions/{SUB}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        )
    };
    let reader_id = identity("reader-id");
    let norole_id = identity("norole-id");
    format!(
        "\
tenant_id: {TENANT}
subscription_id: {SUB}
identities:
  - name: reader-id
    resource_group: {RG}
    client_id: {READER_CLIENT}
    principal_id: {READER_PRINCIPAL}
  - name: norole-id
    resource_group: {RG}
    client_id: {NOROLE_CLIENT}
    principal_id: {NOROLE_PRINCIPAL}
service_principals:
  - name: standalone-sp
    client_id: {SP_CLIENT}
    object_id: {SP_OBJECT}
    credential:
      secret:
        secret: {SP_SECRET}
role_assignments:
  - principal_id: {READER_PRINCIPAL}
    role: StorageBlobDataReader
    scope: /subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}
storage_accounts:
  - name: {ACCOUNT}
    resource_group: {RG}
    containers:
      - name: {CONTAINER}
        blobs:
          - name: {BLOB}
            content: {BLOB_TEXT}
machines:
  - name: {MACHINE}
    resource_group: {RG}
    kind: vm
    user_assigned:
      - {reader_id}
      - {norole_id}
"
    )
}

/// The running binary. `kill_on_drop` kills it whenever this is dropped, including while a
/// failing assertion unwinds.
struct Server {
    child: Child,
    /// First word of each startup line -> the rest (`aad` -> `https://127.0.0.1:PORT`, …).
    printed: HashMap<String, String>,
    stderr_path: PathBuf,
}

impl Server {
    async fn start(dir: &Path, extra_args: &[&str]) -> Server {
        let config = dir.join("cloud.yaml");
        std::fs::write(&config, config_yaml()).unwrap();
        let stderr_path = dir.join("mock-azure.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mock-azure"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--aad", "127.0.0.1:0"])
            .args(["--arm", "127.0.0.1:0"])
            .args(["--blob", "127.0.0.1:0"])
            .args(["--imds", &format!("{MACHINE}=127.0.0.1:0")])
            .arg("--ca-out")
            .arg(dir.join("ca.pem"))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .expect("spawning mock-azure");
        let stdout = child.stdout.take().unwrap();
        let read_startup = async {
            let mut lines = BufReader::new(stdout).lines();
            let mut printed = HashMap::new();
            while let Some(line) = lines.next_line().await.unwrap() {
                let (key, value) = line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
                printed.insert(key.to_string(), value.to_string());
                if key == "ca" {
                    return Some(printed);
                }
            }
            None
        };
        let printed = tokio::time::timeout(Duration::from_secs(120), read_startup).await;
        match printed {
            Ok(Some(printed)) => Server {
                child,
                printed,
                stderr_path,
            },
            other => {
                let why = if other.is_err() {
                    "timed out before printing the CA path"
                } else {
                    "closed stdout before printing the CA path"
                };
                let status = child.try_wait().unwrap();
                let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("mock-azure {why} (exit: {status:?}); stderr:\n{stderr}");
            }
        }
    }

    fn printed(&self, key: &str) -> &str {
        self.printed
            .get(key)
            .unwrap_or_else(|| panic!("mock-azure did not print `{key}`: {:?}", self.printed))
    }

    /// The loopback address from a printed URL such as `https://127.0.0.1:40123`.
    fn addr(&self, key: &str, scheme: &str) -> SocketAddr {
        let url = self.printed(key);
        let addr: SocketAddr = url
            .strip_prefix(&format!("{scheme}://"))
            .unwrap_or_else(|| panic!("`{key}` should be a {scheme} URL, got {url}"))
            .parse()
            .unwrap_or_else(|e| panic!("`{key}` URL {url}: {e}"));
        assert_eq!(
            addr.ip(),
            std::net::Ipv4Addr::LOCALHOST,
            "{key} must be on loopback"
        );
        assert_ne!(addr.port(), 0, "{key} must report the bound port");
        addr
    }

    /// Kills the server, first checking it is still running (it did not crash while serving).
    async fn stop(mut self) {
        let status = self.child.try_wait().unwrap();
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        assert!(
            status.is_none(),
            "mock-azure exited while serving ({status:?}); stderr:\n{stderr}"
        );
        self.child.kill().await.unwrap();
    }
}

async fn imds_token_request(
    client: &reqwest::Client,
    imds: SocketAddr,
    client_id: &str,
    metadata: bool,
) -> reqwest::Response {
    let mut req = client
        .get(format!("http://{imds}/metadata/identity/oauth2/token"))
        .query(&[
            ("api-version", "2018-02-01"),
            ("resource", STORAGE),
            ("client_id", client_id),
        ]);
    if metadata {
        req = req.header("Metadata", "true");
    }
    req.send().await.unwrap()
}

async fn imds_token(client: &reqwest::Client, imds: SocketAddr, client_id: &str) -> String {
    let resp = imds_token_request(client, imds, client_id, true).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "IMDS token for {client_id}: {body}");
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn mock_azure_binary_serves_aad_imds_and_blob_to_a_real_client() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;

    // What the binary printed: our config's tenant and subscription, the CA where we asked.
    assert_eq!(server.printed("tenant"), TENANT);
    assert_eq!(server.printed("subscription"), SUB);
    let ca_path = dir.path().join("ca.pem");
    assert_eq!(Path::new(server.printed("ca")), ca_path);
    let aad = server.addr("aad", "https");
    let arm = server.addr("arm", "https");
    let blob = server.addr("blob", "https");
    let imds = server.addr(&format!("imds[{MACHINE}]"), "http");

    // A client that trusts only the CA the binary wrote and sends the real Azure host names
    // (SNI and Host) to the loopback ports.
    let ca_pem = std::fs::read(&ca_path).unwrap();
    assert!(ca_pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    let ca = reqwest::Certificate::from_pem(&ca_pem).unwrap();
    let blob_host = format!("{ACCOUNT}.blob.core.windows.net");
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("login.microsoftonline.com", aad)
        .resolve("management.azure.com", arm)
        .resolve(&blob_host, blob)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let aad_url = |path: &str| format!("https://login.microsoftonline.com:{}{path}", aad.port());
    let blob_url = |path: &str| format!("https://{blob_host}:{}{path}", blob.port());

    // 1. AAD v1 client credentials with the right secret.
    let resp = client
        .post(aad_url(&format!("/{TENANT}/oauth2/token")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SP_CLIENT),
            ("client_secret", SP_SECRET),
            ("resource", "https://management.azure.com/"),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "AAD v1: {body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], "https://management.azure.com/");
    assert_eq!(body["expires_in"], "3599");
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "v1 access_token is a JWT: {body}"
    );

    // AAD v2 with a scope.
    let resp = client
        .post(aad_url(&format!("/{TENANT}/oauth2/v2.0/token")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SP_CLIENT),
            ("client_secret", SP_SECRET),
            ("scope", "https://storage.azure.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "AAD v2: {body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], json!(3599));
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "v2 access_token is a JWT: {body}"
    );

    // 2. IMDS token for the assigned reader identity: every field a string.
    let resp = imds_token_request(&client, imds, READER_CLIENT, true).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "IMDS: {body}");
    common::assert_imds_token_body(&body, READER_CLIENT, STORAGE);
    let reader_token = body["access_token"].as_str().unwrap().to_string();

    // 3. Blob read with the IMDS token, host-style on the real account host name.
    let resp = client
        .get(blob_url(&format!("/{CONTAINER}/{BLOB}")))
        .bearer_auth(&reader_token)
        .header("x-ms-version", X_MS_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ms-blob-type"], "BlockBlob");
    assert_eq!(resp.text().await.unwrap(), BLOB_TEXT);

    // 4a. Wrong secret: 401 invalid_client, AADSTS7000215.
    let resp = client
        .post(aad_url(&format!("/{TENANT}/oauth2/token")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SP_CLIENT),
            ("client_secret", "not-the-secret"),
            ("resource", "https://management.azure.com/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let text = resp.text().await.unwrap();
    assert!(text.contains("AADSTS7000215"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000215]));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: "),
        "{body}"
    );

    // 4b. IMDS without `Metadata: true`: Azure's exact 400 body.
    let resp = imds_token_request(&client, imds, READER_CLIENT, false).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "error": "invalid_request",
            "error_description": "Required metadata header not specified"
        })
    );

    // 4c. A valid token for an identity with no role on the account: 403 from Blob.
    let norole_token = imds_token(&client, imds, NOROLE_CLIENT).await;
    let resp = client
        .get(blob_url(&format!("/{CONTAINER}/{BLOB}")))
        .bearer_auth(&norole_token)
        .header("x-ms-version", X_MS_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["x-ms-error-code"],
        "AuthorizationPermissionMismatch"
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("<Code>AuthorizationPermissionMismatch</Code>"),
        "{text}"
    );

    server.stop().await;
}

#[tokio::test]
async fn behaviour_flags_switch_arm_authorization_and_the_imds_rate_limit_on() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--arm-authorization",
            "--arm-async-polls",
            "2",
            "--imds-requests-per-second",
            "1",
            "--imds-propagation-delay-ms",
            "60000",
        ],
    )
    .await;
    let aad = server.addr("aad", "https");
    let arm = server.addr("arm", "https");
    let imds = server.addr(&format!("imds[{MACHINE}]"), "http");
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let resp = client
        .post(format!("https://{aad}/{TENANT}/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", SP_CLIENT),
            ("client_secret", SP_SECRET),
            ("resource", "https://management.azure.com/"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    // The service principal has no role: with authorization on, ARM refuses it.
    let resp = client
        .get(format!(
            "https://{arm}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{MACHINE}?api-version=2019-12-01"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AuthorizationFailed");
    // One identity request a second.
    let first = imds_token_request(&client, imds, READER_CLIENT, true).await;
    assert_eq!(
        first.status(),
        200,
        "assigned at start: no propagation delay"
    );
    let second = imds_token_request(&client, imds, READER_CLIENT, true).await;
    assert_eq!(second.status(), 429);
    server.stop().await;
}
