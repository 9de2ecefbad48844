//! Pod groups and concurrent requests: members created at once, every answer judged, failures
//! counted and named, a group deleted as a whole.

use std::sync::atomic::Ordering;

use podid_reports::Outcome;

use super::{Bound, Recorder, bound_scenario, environment, run_one};

/// A bound identity on node-0 and a group of `replicas` pods there; `steps` follows.
fn group_scenario(name: &str, replicas: u32, steps: &str) -> podid_scenario::ScenarioFile {
    let pod = format!("replicas: {replicas}");
    bound_scenario(
        name,
        Bound {
            pod: &pod,
            ..Bound::default()
        },
        steps,
    )
}

#[tokio::test]
async fn a_group_is_created_at_once_and_every_member_sends_its_requests_at_once() {
    let (env, cluster) = environment(true).await;
    let steps = r#"
  - token:
      pod: app
      resource: https://vault.azure.net
      clientId: ${identities.reader.clientId}
      concurrent: 3
    expect:
      status: 200
      maxLatency: 30s
      token: {claims: {appid: "${identities.reader.clientId}"}}
      requests:
        - {service: imds, node: node-0, clientId: "${identities.reader.clientId}", count: 18}
  - name: members are addressed by name
    apply:
      secrets:
        addresses: {stringData: {third: "${pods.app-3.name} ${pods.app-3.ip}"}}
  - token: {pod: app-5, resource: https://vault.azure.net, clientId: "${identities.reader.clientId}"}
    expect:
      status: 200
      requests: [{service: imds, clientId: "${identities.reader.clientId}", count: 1}]
"#;
    let report = run_one(
        &env,
        group_scenario("group", 6, steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    let created = cluster.created_pods.lock().unwrap();
    let mut names: Vec<&str> = created.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["app-0", "app-1", "app-2", "app-3", "app-4", "app-5"]
    );
    assert!(
        cluster.most_pods_at_once.load(Ordering::SeqCst) > 1,
        "the members were created one after another"
    );
    let output = report.steps[0].output.clone().unwrap_or_default();
    assert!(output.starts_with("18 requests: 18 × 200"), "{output}");
}

#[tokio::test]
async fn every_answer_is_judged_and_the_failures_say_how_many_and_which() {
    let (env, _) = environment(true).await;
    let steps = r#"
  - token:
      pod: app
      resource: https://vault.azure.net
      clientId: ${identities.reader.clientId}
      concurrent: 2
    expect: {status: 404}
"#;
    let report = run_one(
        &env,
        group_scenario("all-fail", 4, steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Failed, "{report:#?}");
    let failure = &report.steps[0].failures[0];
    assert_eq!(failure.expectation, "status");
    assert_eq!(failure.message, "8 of 8 answers: status 200, expected 404");
    assert!(failure.actual.starts_with("app-0 #0: 200"), "{failure:?}");
    assert!(failure.actual.ends_with("and 3 more"), "{failure:?}");
}

#[tokio::test]
async fn a_request_without_answer_names_its_pod_and_index() {
    let (env, cluster) = environment(true).await;
    *cluster.unreachable_node.lock().unwrap() = Some("node-0".into());
    let steps = r#"
  - token: {pod: app, resource: https://vault.azure.net, concurrent: 2}
    expect: {status: 200}
"#;
    let report = run_one(
        &env,
        group_scenario("no-answer", 2, steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Errored, "{report:#?}");
    let message = &report.steps[0].failures[0].message;
    assert!(
        message.contains("4 of 4 requests got no answer: app-0 #0:"),
        "{message}"
    );
}

#[tokio::test]
async fn deleting_a_group_deletes_every_member() {
    let (env, _) = environment(true).await;
    let steps = r#"
  - delete: {kind: Pod, name: app}
  - token: {pod: app-1, resource: https://vault.azure.net}
    expect: {status: 200}
"#;
    let report = run_one(
        &env,
        group_scenario("delete-group", 3, steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.steps[0].status, Outcome::Passed, "{report:#?}");
    assert_eq!(report.steps[1].status, Outcome::Errored);
    assert!(
        report.steps[1].failures[0]
            .message
            .contains("pod `app-1` does not exist"),
        "{report:#?}"
    );
}
