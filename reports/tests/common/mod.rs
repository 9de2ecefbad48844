//! A fixed run used by every integration test: one scenario of each outcome, a failed step whose
//! captured values hold a real-looking JWT and a client secret, and fixed times.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use podid_reports::{Attachment, Failure, Outcome, RunReport, ScenarioReport, StepReport};

/// A signed-looking access token (header `{"alg":"RS256","typ":"JWT"}`).
pub const SAMPLE_JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tLyIsImFwcGlkIjoiMDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAxIn0.QmFzZTY0VXJsU2lnbmF0dXJlQnl0ZXNfLXh5eg";
/// A client secret that appears in a captured token request body.
pub const SAMPLE_SECRET: &str = "Sup3r~Secr3t.Value";

fn step(index: usize, name: &str, kind: &str, millis: u64) -> StepReport {
    StepReport {
        index,
        name: name.to_owned(),
        kind: kind.to_owned(),
        status: Outcome::Passed,
        duration: Duration::from_millis(millis),
        failures: vec![],
        output: None,
    }
}

fn scenario(name: &str, file: &str, mode: &str, status: Outcome, millis: u64) -> ScenarioReport {
    ScenarioReport {
        name: name.to_owned(),
        file: file.to_owned(),
        mode: mode.to_owned(),
        tags: vec!["nmi".to_owned()],
        status,
        duration: Duration::from_millis(millis),
        steps: vec![],
        attachments: vec![],
        skip_reason: None,
    }
}

/// The shared sample run.
pub fn sample_report() -> RunReport {
    let mut bound = scenario(
        "bound pod gets a token",
        "nmi/bound_pod.yaml",
        "managed",
        Outcome::Passed,
        2_340,
    );
    bound.tags.push("smoke".to_owned());
    bound.steps = vec![
        step(1, "apply identity and binding", "apply", 310),
        step(
            2,
            "token app (client_id=00000000-0000-0000-0000-000000000001)",
            "token",
            1_200,
        ),
    ];

    let mut denied = scenario(
        "unbound pod is denied",
        "nmi/unbound_pod.yaml",
        "standard",
        Outcome::Failed,
        3_456,
    );
    let mut token_step = step(
        2,
        "token app (client_id=00000000-0000-0000-0000-000000000001)",
        "token",
        1_870,
    );
    token_step.status = Outcome::Failed;
    token_step.failures = vec![
        Failure {
            expectation: "status".to_owned(),
            expected: "403".to_owned(),
            actual: "200".to_owned(),
            message: "NMI issued a token to a pod without a binding".to_owned(),
        },
        Failure {
            expectation: "body".to_owned(),
            expected: "no access_token".to_owned(),
            actual: format!(
                "{{\"access_token\": \"{SAMPLE_JWT}\", \"token_type\": \"Bearer\"}}\nmock AAD saw: grant_type=client_credentials&client_id=app&client_secret={SAMPLE_SECRET}&resource=https%3A%2F%2Fmanagement.azure.com%2F"
            ),
            message: format!("Authorization: Bearer {SAMPLE_JWT}"),
        },
    ];
    token_step.output = Some(format!("curl -H 'Authorization: Bearer {SAMPLE_JWT}' …"));
    let mut imds_step = step(3, "imds requests", "expect", 5);
    imds_step.status = Outcome::Failed;
    imds_step.failures = vec![Failure {
        expectation: "imds requests".to_owned(),
        expected: "0".to_owned(),
        actual: "1".to_owned(),
        message: String::new(),
    }];
    denied.steps = vec![
        step(1, "apply pod without binding", "apply", 400),
        token_step,
        imds_step,
    ];
    denied.attachments = vec![
        Attachment {
            name: "nmi log".to_owned(),
            path: PathBuf::from("target/podid/artifacts/run-42/unbound_pod/nmi.log"),
        },
        Attachment {
            name: "mock requests".to_owned(),
            path: PathBuf::from("target/podid/artifacts/run-42/unbound_pod/mock-requests.jsonl"),
        },
    ];

    let mut blob = scenario(
        "blob read with token | managed <fallback>",
        "blob/read.yaml",
        "standard",
        Outcome::Errored,
        30_100,
    );
    let mut setup = step(1, "wait for pod ready", "wait", 30_000);
    setup.status = Outcome::Errored;
    setup.output = Some(
        "timed out after 30s waiting for pod default/blob-reader\nlast phase: Pending".to_owned(),
    );
    blob.steps = vec![setup];

    let mut iptables = scenario(
        "metadata traffic is redirected",
        "nmi/redirect.yaml",
        "standard",
        Outcome::Skipped,
        0,
    );
    iptables.skip_reason =
        Some("requires real-network, which provider local does not offer".to_owned());

    RunReport {
        run_id: "run-42".to_owned(),
        provider: "local".to_owned(),
        started_at: DateTime::parse_from_rfc3339("2025-03-04T05:06:07Z")
            .expect("fixed time parses")
            .with_timezone(&Utc),
        duration: Duration::from_millis(62_480),
        environment: vec![
            ("nmi".to_owned(), "v1.8.17".to_owned()),
            ("kube-apiserver".to_owned(), "v1.33.1".to_owned()),
            ("etcd".to_owned(), "3.5.21".to_owned()),
        ],
        scenarios: vec![bound, denied, blob, iptables],
    }
}

/// Fails with the offending text if a credential from the sample shows up in `rendered`.
pub fn assert_no_credentials(rendered: &str) {
    assert!(!rendered.contains("eyJ"), "JWT leaked:\n{rendered}");
    assert!(
        !rendered.contains(SAMPLE_SECRET),
        "client secret leaked:\n{rendered}"
    );
    let signature = SAMPLE_JWT.rsplit('.').next().expect("JWT has segments");
    assert!(
        !rendered.contains(signature),
        "JWT signature leaked:\n{rendered}"
    );
}
