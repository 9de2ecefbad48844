//! Faults and cloud behaviour: in place for exactly the step or trial that declares them, and
//! the cloud answering as usual again afterwards.

use podid_reports::Outcome;

use super::{GOOD_TOKEN, Recorder, environment, run_one, scenario, token_scenario};

#[tokio::test]
async fn a_step_fault_answers_only_that_step() {
    let (env, _) = environment(true).await;
    let steps = format!(
        r#"
  - token: {{pod: app, resource: "https://storage.azure.com/", clientId: "${{identities.reader.clientId}}"}}
    faults:
      - service: imds
        clientId: ${{identities.reader.clientId}}
        status: 503
        retryAfter: "7"
    expect:
      status: 503
      headers: {{Retry-After: "7"}}
{GOOD_TOKEN}"#
    );
    let report = run_one(
        &env,
        token_scenario("step-fault", "", &steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
}

#[tokio::test]
async fn a_scenario_fault_lasts_the_trial_and_is_gone_after_it() {
    let (env, _) = environment(true).await;
    let extra = r#"
faults:
  - service: imds
    path: /metadata/identity
    status: 500
    count: 2
"#;
    let steps = r#"
  - token: {pod: app, resource: "https://storage.azure.com/", clientId: "${identities.reader.clientId}"}
    expect: {status: 500}
  - token: {pod: app, resource: "https://storage.azure.com/", clientId: "${identities.reader.clientId}"}
    expect: {status: 500}
"#;
    let report = run_one(
        &env,
        token_scenario("trial-fault", extra, steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    // Without count, a fault of an ended trial would still answer: the next trial proves not.
    let forever = r#"
faults:
  - service: imds
    status: 500
"#;
    let report = run_one(
        &env,
        token_scenario(
            "forever-fault",
            forever,
            r#"
  - token: {pod: app, resource: "https://storage.azure.com/"}
    expect: {status: 500}
"#,
        ),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    let after = run_one(
        &env,
        token_scenario("after-faults", "", GOOD_TOKEN),
        &Recorder::default(),
    )
    .await;
    assert_eq!(after.status, Outcome::Passed, "{after:#?}");
}

#[tokio::test]
async fn imds_behaviour_is_the_usual_one_again_after_the_trial() {
    let (env, _) = environment(true).await;
    let delayed = scenario(
        "propagation",
        r#"
name: propagation
modes: [managed]
cloud:
  imds: {propagationDelay: 60s}
  identities:
    reader: {}
  nodeIdentities:
    node-0: [reader]
cluster:
  azureIdentities:
    reader: {identity: reader}
  azureIdentityBindings:
    reader-binding: {azureIdentity: reader, selector: reader}
  pods:
    app: {node: node-0, labels: {aadpodidbinding: reader}}
steps:
  - token: {pod: app, resource: "https://storage.azure.com/", clientId: "${identities.reader.clientId}"}
    expect:
      status: 400
      body: {contains: Identity not found}
"#,
    );
    let report = run_one(&env, delayed, &Recorder::default()).await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    let after = run_one(
        &env,
        token_scenario("after-delay", "", GOOD_TOKEN),
        &Recorder::default(),
    )
    .await;
    assert_eq!(after.status, Outcome::Passed, "{after:#?}");
}

#[tokio::test]
async fn an_exec_step_is_skipped_where_pods_cannot_run_the_client() {
    let (env, _) = environment(true).await;
    let steps = r#"
  - exec: {pod: app, client: python, args: [token, --resource, "https://storage.azure.com/"]}
    expect: {exitCode: 0}
"#;
    let report = run_one(
        &env,
        token_scenario("client", "", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Skipped, "{report:#?}");
    let reason = report.skip_reason.unwrap_or_default();
    assert!(
        reason.contains("the Python SDK client inside pods"),
        "{reason}"
    );
}
