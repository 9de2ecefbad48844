//! The real Azure SDK for Python (azure-identity + azure-storage-blob) against the mocks, unchanged:
//! service-principal secret via the mock AAD, managed identity via the mock IMDS, path-style Blob.

mod common;

use std::process::Command;

use common::*;

#[tokio::test]
async fn azure_sdk_for_python_reads_and_writes_blobs() {
    if std::env::var("PODID_SKIP_PY_SDK").as_deref() == Ok("1") {
        println!("skipping the Python SDK test: PODID_SKIP_PY_SDK=1");
        return;
    }
    let env = Env::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    env.cloud.tls().write_ca_bundle(&ca).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sdk_roundtrip.py");
    let since = env.cloud.next_seq();
    let (aad, blob, imds) = (
        env.aad.local_addr(),
        env.blob.local_addr(),
        env.imds_node1.local_addr(),
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env("SSL_CERT_FILE", &ca)
            .env("NO_PROXY", "*")
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .env("MOCK_TENANT", TENANT)
            .env("MOCK_AAD", format!("https://127.0.0.1:{}", aad.port()))
            .env(
                "MOCK_BLOB_ACCOUNT_URL",
                format!("https://127.0.0.1:{}/{ACCOUNT}", blob.port()),
            )
            .env("MOCK_CONTAINER", "data")
            .env("MOCK_BLOB", "hello.txt")
            .env("MOCK_BLOB_TEXT", BLOB_TEXT)
            .env("MOCK_SP_CLIENT", SP_SECRET_CLIENT)
            .env("MOCK_SP_SECRET", SP_SECRET)
            .env(
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                format!("http://{imds}"),
            )
            .env("MOCK_MI_CLIENT", WRITER_CLIENT)
            .env("MOCK_UPLOAD_BLOB", "from-python.txt")
            .env("MOCK_UPLOAD_TEXT", "written by azure-storage-blob")
            .output()
    })
    .await
    .unwrap()
    .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "Python SDK script failed ({}); install mocks/tests/python/requirements.txt or set PODID_SKIP_PY_SDK=1\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(stdout.contains("OK"), "{stdout}");
    assert_eq!(
        env.cloud
            .blob_content(ACCOUNT, "data", "from-python.txt")
            .as_deref(),
        Some(&b"written by azure-storage-blob"[..])
    );
    let log = env.cloud.requests_matching(&podid_mocks::RequestFilter {
        since_seq: Some(since),
        ..Default::default()
    });
    let aad_calls: Vec<_> = log
        .iter()
        .filter(|r| r.service == podid_mocks::Service::Aad)
        .collect();
    assert!(
        aad_calls
            .iter()
            .any(|r| r.path.ends_with("/oauth2/v2.0/token") && r.status == 200),
        "{aad_calls:#?}"
    );
    assert!(
        log.iter().any(|r| r.service == podid_mocks::Service::Imds
            && r.client_id.as_deref() == Some(WRITER_CLIENT)
            && r.status == 200),
        "MI token came from the mock IMDS"
    );
}
