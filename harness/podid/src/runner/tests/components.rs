//! Lifecycle and `health` steps, `expect.iptables`, recovering the components after a trial
//! that stopped some, and MIC's replicas.

use std::sync::atomic::Ordering;

use podid_reports::Outcome;

use super::{GOOD_TOKEN, Recorder, environment, run_one, scenario, token_scenario};

#[tokio::test]
async fn a_stopped_nmi_is_named_in_health_failures_and_recovered_after_the_trial() {
    let (env, cluster) = environment(true).await;
    let steps = r#"
  - stop: {component: nmi, node: node-0}
    expect: {iptables: {node-0: absent, node-1: present}}
  - health: {component: nmi}
    expect: {status: 200, body: {equals: Active}}
"#;
    let report = run_one(
        &env,
        token_scenario("stopped", "", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Failed, "{report:#?}");
    assert_eq!(report.steps[0].status, Outcome::Passed, "{report:#?}");
    let failures = &report.steps[1].failures;
    assert_eq!(
        failures[0].message,
        "1 of 2 answers: status 503, expected 200"
    );
    assert!(
        failures[0].actual.starts_with("nmi@node-0: 503"),
        "{failures:?}"
    );
    assert_eq!(failures[1].expectation, "body.equals");
    let recovered = cluster.recovered.lock().unwrap();
    assert_eq!(recovered.len(), 1, "recovered once, after the trial");
    assert!(cluster.down.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_killed_nmi_leaves_its_chain_and_starts_again() {
    let (env, cluster) = environment(true).await;
    let steps = r#"
  - kill: {component: nmi, node: node-1}
    expect: {iptables: {node-1: present}}
  - health: {component: nmi, node: node-1}
    expect: {status: 503}
  - start: {component: nmi, node: node-1}
  - health: {component: nmi, node: node-1}
    expect: {status: 200, body: {equals: Active}}
"#;
    let report = run_one(
        &env,
        token_scenario("killed", "", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    let calls = cluster.lifecycle_calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].1.node.as_deref(), Some("node-1"));
    assert_eq!(cluster.recovered.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_recovery_fails_the_trial_and_the_next_trial_reconfigures() {
    let (env, cluster) = environment(true).await;
    cluster.recover_fails.store(true, Ordering::SeqCst);
    let steps = format!("  - restart: {{component: apiserver}}\n{GOOD_TOKEN}");
    let first = run_one(
        &env,
        token_scenario("restarts", "", &steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(first.status, Outcome::Errored, "{first:#?}");
    let last = first.steps.last().unwrap();
    assert_eq!(last.kind, "recover");
    assert!(
        last.failures[0].actual.contains("NMI would not start"),
        "{last:?}"
    );
    cluster.recover_fails.store(false, Ordering::SeqCst);
    let second = run_one(
        &env,
        token_scenario("after", "", GOOD_TOKEN),
        &Recorder::default(),
    )
    .await;
    assert_eq!(second.status, Outcome::Passed, "{second:#?}");
    assert_eq!(
        cluster.configured.lock().unwrap().len(),
        2,
        "the same configuration is applied again after the failed recovery"
    );
}

#[tokio::test]
async fn two_mic_replicas_answer_as_leader_and_follower() {
    let (env, cluster) = environment(true).await;
    let file = scenario(
        "replicas",
        r#"
name: replicas
modes: [standard]
mic: {replicas: 2}
steps:
  - health: {component: mic, replica: leader}
    expect: {status: 200, body: {equals: Active}}
  - health: {component: mic, replica: follower}
    expect: {status: 200, body: {equals: Not Active}}
  - health: {component: mic}
    expect: {body: {equals: Active}}
"#,
    );
    let plan = env.plan(crate::runner::trials(std::slice::from_ref(&file)));
    assert!(
        plan.trials[0].exclusive,
        "two MIC replicas need the cluster to themselves"
    );
    let report = run_one(&env, file, &Recorder::default()).await;
    assert_eq!(report.status, Outcome::Failed, "{report:#?}");
    assert_eq!(report.steps[0].status, Outcome::Passed);
    assert_eq!(report.steps[1].status, Outcome::Passed);
    let failure = &report.steps[2].failures[0];
    assert_eq!(failure.message, "1 of 2 answers: body differs");
    assert!(
        failure.actual.starts_with("mic#1: \"Not Active\""),
        "{failure:?}"
    );
    assert_eq!(cluster.configured.lock().unwrap()[0].mic_replicas, 2);
}
