//! The real Azure SDK for Python against the mocks, unchanged: azure-identity (service-principal
//! secret via the mock AAD, managed identity via the mock IMDS), azure-storage-blob (path-style
//! Blob, single-shot and in blocks) and azure-mgmt-compute (a long-running scale-set update).
//!
//! Runs under its own harness (libtest-mimic) so that opting out with `PODID_SKIP_PY_SDK=1` is
//! reported as *ignored*, never as passed; without the opt-out, a missing SDK fails the test.

mod common;

use std::future::Future;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use libtest_mimic::{Arguments, Failed, Trial};
use podid_mocks::{ArmBehaviour, ImdsBehaviour, MachineRef, RequestFilter, Service};

/// Set to `1` to mark the test ignored (machines without Python).
const SKIP_VAR: &str = "PODID_SKIP_PY_SDK";
/// How to get what the script imports (run from the workspace root).
const INSTALL: &str = "python3 -m pip install -r mocks/tests/python/requirements.txt";

fn main() {
    let args = Arguments::from_args();
    let skip = std::env::var(SKIP_VAR).as_deref() == Ok("1");
    if skip {
        eprintln!("{SKIP_VAR}=1 is set: the Python SDK tests are not run");
    }
    let trials = vec![
        trial(
            "azure_sdk_for_python_reads_and_writes_blobs",
            azure_sdk_for_python_reads_and_writes_blobs,
        ),
        trial(
            "azure_storage_blob_uploads_in_blocks",
            azure_storage_blob_uploads_in_blocks,
        ),
        trial(
            "azure_mgmt_compute_polls_a_long_running_update",
            azure_mgmt_compute_polls_a_long_running_update,
        ),
        trial(
            "managed_identity_credential_meets_propagation_and_throttling",
            managed_identity_credential_meets_propagation_and_throttling,
        ),
    ];
    let trials = trials
        .into_iter()
        .map(|t| t.with_ignored_flag(skip))
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// A trial that checks the prerequisites, then runs `test` on a runtime like `#[tokio::test]`'s.
fn trial<F, Fut>(name: &'static str, test: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::test(name, move || {
        check_python_sdk()?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(test());
        Ok(())
    })
}

/// Fails with install instructions unless `python3` runs and imports the SDK packages.
fn check_python_sdk() -> Result<(), Failed> {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import azure.identity, azure.storage.blob, azure.mgmt.compute",
        ])
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

/// Runs `tests/python/{script}` with the run's CA trusted, no proxy, and `vars`; fails the test
/// unless it exits 0 and prints `OK`.
async fn run_script(env: &Env, script: &'static str, vars: Vec<(&'static str, String)>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    env.cloud.tls().write_ca_bundle(&ca).unwrap();
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("python3");
        cmd.arg(path)
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env("SSL_CERT_FILE", &ca)
            .env("NO_PROXY", "*")
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output()
    })
    .await
    .unwrap()
    .expect("python3 must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "{script} failed ({}); if packages are missing, run `{INSTALL}` or set {SKIP_VAR}=1\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    output
}

fn aad_authority(env: &Env) -> String {
    format!("https://127.0.0.1:{}", env.aad.local_addr().port())
}

fn blob_account_url(env: &Env) -> String {
    format!(
        "https://127.0.0.1:{}/{ACCOUNT}",
        env.blob.local_addr().port()
    )
}

/// Runs `sdk_roundtrip.py` against a fresh cloud and checks what it did through the request log.
async fn azure_sdk_for_python_reads_and_writes_blobs() {
    let env = Env::start().await;
    let since = env.cloud.next_seq();
    let imds = env.imds_node1.local_addr();
    run_script(
        &env,
        "sdk_roundtrip.py",
        vec![
            ("MOCK_TENANT", TENANT.to_string()),
            ("MOCK_AAD", aad_authority(&env)),
            ("MOCK_BLOB_ACCOUNT_URL", blob_account_url(&env)),
            ("MOCK_CONTAINER", "data".into()),
            ("MOCK_BLOB", "hello.txt".into()),
            ("MOCK_BLOB_TEXT", BLOB_TEXT.into()),
            ("MOCK_SP_CLIENT", SP_SECRET_CLIENT.into()),
            ("MOCK_SP_SECRET", SP_SECRET.into()),
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                format!("http://{imds}"),
            ),
            ("MOCK_MI_CLIENT", WRITER_CLIENT.into()),
            ("MOCK_UPLOAD_BLOB", "from-python.txt".into()),
            ("MOCK_UPLOAD_TEXT", "written by azure-storage-blob".into()),
        ],
    )
    .await;
    assert_eq!(
        env.cloud
            .blob_content(ACCOUNT, "data", "from-python.txt")
            .as_deref(),
        Some(&b"written by azure-storage-blob"[..])
    );
    let log = env.cloud.requests_matching(&RequestFilter {
        since_seq: Some(since),
        ..Default::default()
    });
    let aad_calls: Vec<_> = log.iter().filter(|r| r.service == Service::Aad).collect();
    assert!(
        aad_calls
            .iter()
            .any(|r| r.path.ends_with("/oauth2/v2.0/token") && r.status == 200),
        "{aad_calls:#?}"
    );
    assert!(
        log.iter().any(|r| r.service == Service::Imds
            && r.client_id.as_deref() == Some(WRITER_CLIENT)
            && r.status == 200),
        "MI token came from the mock IMDS"
    );
}

/// Runs `blob_blocks.py`: an upload larger than the SDK's single-shot limit goes in blocks.
async fn azure_storage_blob_uploads_in_blocks() {
    const BLOCK: usize = 1024;
    const SIZE: usize = 10 * BLOCK + 123;
    let env = Env::start().await;
    let since = env.cloud.next_seq();
    let imds = env.imds_node1.local_addr();
    run_script(
        &env,
        "blob_blocks.py",
        vec![
            ("MOCK_BLOB_ACCOUNT_URL", blob_account_url(&env)),
            ("MOCK_CONTAINER", "data".into()),
            ("MOCK_UPLOAD_BLOB", "large.bin".into()),
            ("MOCK_BLOCK_SIZE", BLOCK.to_string()),
            ("MOCK_UPLOAD_SIZE", SIZE.to_string()),
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                format!("http://{imds}"),
            ),
            ("MOCK_MI_CLIENT", WRITER_CLIENT.into()),
        ],
    )
    .await;
    let stored = env
        .cloud
        .blob_content(ACCOUNT, "data", "large.bin")
        .unwrap();
    let expected: Vec<u8> = (0..SIZE).map(|i| ((i * 7 + i / 251) % 256) as u8).collect();
    assert_eq!(stored, expected, "the committed blob is the uploaded data");
    let log = env.cloud.requests_matching(&RequestFilter {
        service: Some(Service::Blob),
        path_prefix: Some(format!("/{ACCOUNT}/data/large.bin")),
        since_seq: Some(since),
        ..Default::default()
    });
    let comp = |r: &podid_mocks::RecordedRequest| {
        r.query
            .iter()
            .find(|(k, _)| k == "comp")
            .map(|(_, v)| v.clone())
    };
    let blocks = log
        .iter()
        .filter(|r| r.method == "PUT" && comp(r).as_deref() == Some("block"))
        .count();
    assert_eq!(blocks, SIZE.div_ceil(BLOCK), "one Put Block per block");
    assert!(log.iter().all(|r| r.status < 300), "{log:#?}");
    assert!(
        log.iter()
            .any(|r| r.method == "PUT" && comp(r).as_deref() == Some("blocklist")),
        "committed with Put Block List"
    );
    assert!(
        !log.iter().any(|r| r.method == "PUT" && comp(r).is_none()),
        "no single-shot Put Blob"
    );
}

/// Runs `arm_lro.py`: azure-mgmt-compute's `begin_update(...).result()` against a 200 `Updating`
/// answer with `Azure-AsyncOperation` and two `InProgress` polls.
async fn azure_mgmt_compute_polls_a_long_running_update() {
    let env = Env::start().await;
    env.cloud.set_arm_behaviour(ArmBehaviour {
        authorization: false,
        async_polls: 2,
    });
    let since = env.cloud.next_seq();
    run_script(
        &env,
        "arm_lro.py",
        vec![
            ("MOCK_TENANT", TENANT.to_string()),
            ("MOCK_AAD", aad_authority(&env)),
            ("MOCK_SP_CLIENT", SP_SECRET_CLIENT.into()),
            ("MOCK_SP_SECRET", SP_SECRET.into()),
            ("MOCK_SUBSCRIPTION", SUB.into()),
            (
                "MOCK_ARM",
                format!("https://127.0.0.1:{}", env.arm.local_addr().port()),
            ),
            ("MOCK_RESOURCE_GROUP", RG.into()),
            ("MOCK_VMSS", "pool".into()),
            ("MOCK_IDENTITY_ID", identity_id("spare-id")),
        ],
    )
    .await;
    assert_eq!(
        env.cloud
            .assigned_identities(&MachineRef::scale_set_instance("pool", 0))
            .unwrap(),
        vec![identity_id("spare-id")]
    );
    let arm: Vec<(String, u16)> = env
        .cloud
        .requests_matching(&RequestFilter {
            service: Some(Service::Arm),
            since_seq: Some(since),
            ..Default::default()
        })
        .into_iter()
        .map(|r| (format!("{} {}", r.method, r.path), r.status))
        .collect();
    let polls = arm
        .iter()
        .filter(|(req, _)| req.contains("/providers/Microsoft.Compute/locations/"))
        .count();
    assert_eq!(polls, 3, "two InProgress and one Succeeded: {arm:#?}");
    assert_eq!(arm[0].1, 200, "{arm:#?}");
    assert!(arm[0].0.starts_with("PATCH "), "{arm:#?}");
}

/// Runs `imds_behaviour.py`: ManagedIdentityCredential during a propagation delay and over the
/// rate limit.
async fn managed_identity_credential_meets_propagation_and_throttling() {
    const PROPAGATION: Duration = Duration::from_secs(4);
    let env = Env::start().await;
    env.cloud.set_imds_behaviour(ImdsBehaviour {
        propagation_delay: Some(PROPAGATION),
        requests_per_second: Some(1),
    });
    let since = env.cloud.next_seq();
    env.cloud
        .assign_identity(&MachineRef::vm("node-1"), &identity_id("spare-id"))
        .unwrap();
    let imds = env.imds_node1.local_addr();
    run_script(
        &env,
        "imds_behaviour.py",
        vec![
            (
                "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                format!("http://{imds}"),
            ),
            ("MOCK_NEW_CLIENT", SPARE_CLIENT.into()),
            ("MOCK_PROPAGATION_SECS", PROPAGATION.as_secs().to_string()),
            ("MOCK_THROTTLED_CLIENT", READER_CLIENT.into()),
        ],
    )
    .await;
    let statuses = |client: &str| -> Vec<u16> {
        env.cloud
            .requests_matching(&RequestFilter {
                service: Some(Service::Imds),
                client_id: Some(client.into()),
                since_seq: Some(since),
                ..Default::default()
            })
            .iter()
            .map(|r| r.status)
            .collect()
    };
    assert_eq!(statuses(SPARE_CLIENT), vec![400, 200]);
    let throttled = statuses(READER_CLIENT);
    assert_eq!(throttled.first(), Some(&200), "{throttled:?}");
    assert_eq!(throttled.last(), Some(&200), "{throttled:?}");
    assert!(
        throttled[1..throttled.len() - 1].iter().all(|s| *s == 429) && throttled.len() >= 3,
        "the SDK met 429 and retried: {throttled:?}"
    );
}
