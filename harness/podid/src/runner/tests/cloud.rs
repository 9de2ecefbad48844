//! `cloud` steps and `expect.nodeIdentities`: changes behind MIC's back, undone at the end;
//! a recreated identity's new IDs in every later reference.

use podid_reports::Outcome;

use super::{Recorder, environment, run_one, token_scenario};
use crate::provider::Machine;

fn machine(env: &crate::runner::Environment, logical: &str) -> Machine {
    env.provider
        .cluster
        .nodes()
        .iter()
        .find(|n| n.logical == logical)
        .unwrap()
        .machine
        .clone()
}

#[tokio::test]
async fn machines_change_as_the_steps_say_and_are_put_back_at_the_end() {
    let (env, cluster) = environment(true).await;
    let steps = r#"
  - cloud: {assign: {identity: reader, node: node-1}}
    expect:
      nodeIdentities:
        node-1: {has: [reader], lacks: [cluster]}
        node-0: {has: [reader]}
  - cloud: {assign: {identity: cluster, node: node-1}}
    expect: {nodeIdentities: {node-1: {has: [reader, cluster]}}}
  - cloud: {unassign: {identity: reader, node: node-0}}
    expect: {nodeIdentities: {node-0: {lacks: [reader]}}}
  - cloud: {enableSystemAssigned: node-0}
    expect:
      nodeIdentities:
        node-0: {systemAssigned: true}
        node-1: {systemAssigned: false}
"#;
    let report = run_one(
        &env,
        token_scenario("machines", "", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    let cloud = &env.provider.cloud;
    let node1 = cloud
        .machine_identities(&machine(&env, "node-1"))
        .await
        .unwrap();
    assert!(
        node1.user_assigned.is_empty(),
        "what the steps assigned is taken off again: {node1:?}"
    );
    let node0 = cloud
        .machine_identities(&machine(&env, "node-0"))
        .await
        .unwrap();
    assert!(node0.user_assigned.is_empty(), "{node0:?}");
    assert!(
        node0.system_assigned.is_none(),
        "the system-assigned identity the trial enabled is disabled again: {node0:?}"
    );
    let _ = cluster;
}

#[tokio::test]
async fn a_machine_that_differs_says_what_it_holds() {
    let (env, _) = environment(true).await;
    let steps = r#"
  - cloud: {unassign: {identity: reader, node: node-0}}
    expect:
      nodeIdentities:
        node-0: {has: [reader]}
        node-1: {systemAssigned: true}
"#;
    let report = run_one(
        &env,
        token_scenario("differs", "", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Failed, "{report:#?}");
    let failures = &report.steps[0].failures;
    assert_eq!(failures[0].expectation, "nodeIdentities.node-0.has");
    assert_eq!(failures[0].message, "node-0's machine lacks reader");
    assert_eq!(failures[0].actual, "[]");
    assert_eq!(
        failures[1].expectation,
        "nodeIdentities.node-1.systemAssigned"
    );
    assert_eq!(failures[1].actual, "not enabled");
}

#[tokio::test]
async fn a_recreated_identity_is_referred_to_by_its_new_ids() {
    let (env, _) = environment(true).await;
    let steps = r#"
  - token: {pod: app, resource: "https://vault.azure.net", clientId: "${identities.reader.clientId}"}
    expect: {status: 200}
  - cloud: {recreateIdentity: reader}
  # The machine keeps a stale reference until the identity is assigned again.
  - cloud: {unassign: {identity: reader, node: node-0}}
  - cloud: {assign: {identity: reader, node: node-0}}
  - token: {pod: app, resource: "https://vault.azure.net", clientId: "${identities.reader.clientId}"}
    expect:
      status: 200
      token: {claims: {appid: "${identities.reader.clientId}", oid: "${identities.reader.principalId}"}}
      requests:
        - {service: imds, clientId: "${identities.reader.clientId}", since: trial, count: 1}
"#;
    let report = run_one(
        &env,
        token_scenario("recreated", "", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    let shown = report.steps[1].output.clone().unwrap_or_default();
    assert!(
        shown.starts_with("identity reader now has client ID"),
        "{shown}"
    );
}
