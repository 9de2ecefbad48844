//! The real Azure SDK for Python (azure-identity + azure-storage-blob) against the mocks, unchanged:
//! service-principal secret via the mock AAD, managed identity via the mock IMDS, path-style Blob.
//!
//! Runs under its own harness (libtest-mimic) so that opting out with `PODID_SKIP_PY_SDK=1` is
//! reported as *ignored*, never as passed; without the opt-out, a missing SDK fails the test.

mod common;

use std::process::Command;

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};

/// Set to `1` to mark the test ignored (machines without Python).
const SKIP_VAR: &str = "PODID_SKIP_PY_SDK";
/// How to get what the script imports (run from the workspace root).
const INSTALL: &str = "python3 -m pip install -r mocks/tests/python/requirements.txt";

fn main() {
    let args = Arguments::from_args();
    let skip = std::env::var(SKIP_VAR).as_deref() == Ok("1");
    if skip {
        eprintln!("{SKIP_VAR}=1 is set: the Python SDK round trip is not run");
    }
    let trial = Trial::test("azure_sdk_for_python_reads_and_writes_blobs", run_trial)
        .with_ignored_flag(skip);
    libtest_mimic::run(&args, vec![trial]).exit();
}

/// Checks the prerequisites, then runs the round trip on a runtime like `#[tokio::test]`'s.
fn run_trial() -> Result<(), Failed> {
    check_python_sdk()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(azure_sdk_for_python_reads_and_writes_blobs());
    Ok(())
}

/// Fails with install instructions unless `python3` runs and imports the SDK packages.
fn check_python_sdk() -> Result<(), Failed> {
    let probe = Command::new("python3")
        .args(["-c", "import azure.identity, azure.storage.blob"])
        .output();
    match probe {
        Err(e) => Err(format!(
            "cannot run python3 ({e}): install Python 3, then `{INSTALL}`; \
             or set {SKIP_VAR}=1 to report this test as ignored"
        )
        .into()),
        Ok(out) if !out.status.success() => Err(format!(
            "the Azure SDK for Python is not installed: run `{INSTALL}`; \
             or set {SKIP_VAR}=1 to report this test as ignored\npython3 said:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()),
        Ok(_) => Ok(()),
    }
}

/// Runs `sdk_roundtrip.py` against a fresh cloud and checks what it did through the request log.
async fn azure_sdk_for_python_reads_and_writes_blobs() {
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
        "Python SDK script failed ({}); if packages are missing, run `{INSTALL}` or set {SKIP_VAR}=1\nstdout:\n{stdout}\nstderr:\n{stderr}",
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
