//! `wait` on fields and counts and `expect.objects`: AzureAssignedIdentities in MIC's namespace,
//! counted for the trial's own pods only, mismatches shown as expected and actual.

use podid_reports::Outcome;
use serde_json::json;

use super::{Recorder, environment, run_one, scenario};
use crate::provider::ObjectStore;

/// Two AzureAssignedIdentities of the trial in MIC's namespace (one Assigned, one Created);
/// `steps` follows.
fn assigned_identities(name: &str, steps: &str) -> podid_scenario::ScenarioFile {
    scenario(
        name,
        &format!(
            r#"
name: {name}
modes: [managed]
cluster:
  manifests:
    - apiVersion: aadpodidentity.k8s.io/v1
      kind: AzureAssignedIdentity
      metadata: {{name: "app-${{scenario.namespace}}-reader", namespace: "${{scenario.micNamespace}}"}}
      spec: {{pod: app, podNamespace: "${{scenario.namespace}}", replicas: 1}}
      status: {{status: Assigned}}
    - apiVersion: aadpodidentity.k8s.io/v1
      kind: AzureAssignedIdentity
      metadata: {{name: "other-${{scenario.namespace}}-reader", namespace: "${{scenario.micNamespace}}"}}
      spec: {{pod: other, podNamespace: "${{scenario.namespace}}"}}
      status: {{status: Created}}
steps:
{steps}
"#
        ),
    )
}

/// Another trial's AzureAssignedIdentity, Assigned, in MIC's namespace.
async fn foreign_assigned_identity(objects: &dyn ObjectStore) {
    objects
        .apply(&json!({
            "apiVersion": "aadpodidentity.k8s.io/v1",
            "kind": "AzureAssignedIdentity",
            "metadata": {"name": "app-elsewhere-reader", "namespace": "default"},
            "spec": {"pod": "app", "podNamespace": "elsewhere"},
            "status": {"status": "Assigned"},
        }))
        .await
        .unwrap();
}

#[tokio::test]
async fn assigned_identities_are_waited_for_and_counted_for_the_trials_pods_only() {
    let (env, cluster) = environment(true).await;
    foreign_assigned_identity(&cluster.objects).await;
    let steps = r#"
  - wait:
      kind: AzureAssignedIdentity
      count: 1
      fields: {status.status: Assigned}
      timeout: 2s
  - wait:
      kind: AzureAssignedIdentity
      name: app-${scenario.namespace}-reader
      fields: {spec.pod: app, status.status: Assigned, spec.replicas: "1"}
      timeout: 2s
    expect:
      objects:
        - {kind: AzureAssignedIdentity, count: 2}
        - {kind: AzureAssignedIdentity, name: "gone-${scenario.namespace}-reader", absent: true}
        - kind: AzureAssignedIdentity
          name: other-${scenario.namespace}-reader
          namespace: mic
          fields: {status.status: Created}
"#;
    let report = run_one(
        &env,
        assigned_identities("counted", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
}

#[tokio::test]
async fn object_mismatches_show_what_was_expected_and_what_there_was() {
    let (env, cluster) = environment(true).await;
    foreign_assigned_identity(&cluster.objects).await;
    let steps = r#"
  - sleep: 1ms
    expect:
      objects:
        - kind: AzureAssignedIdentity
          name: other-${scenario.namespace}-reader
          fields: {status.status: Assigned, spec.pod: other}
        - {kind: AzureAssignedIdentity, count: 3}
"#;
    let report = run_one(
        &env,
        assigned_identities("differs", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Failed, "{report:#?}");
    let failures = &report.steps[0].failures;
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert!(
        failures[0]
            .expected
            .ends_with("in default with status.status=Assigned, spec.pod=other"),
        "{:?}",
        failures[0]
    );
    assert_eq!(failures[0].actual, "status.status=Created");
    assert!(
        failures[1]
            .expected
            .starts_with("3 × AzureAssignedIdentity in default for this trial's pods"),
        "{:?}",
        failures[1]
    );
    assert!(
        failures[1].actual.starts_with("2 matching: [app-"),
        "{:?}",
        failures[1]
    );
    assert!(
        !failures[1].actual.contains("elsewhere"),
        "{:?}",
        failures[1]
    );
}

#[tokio::test]
async fn a_count_wait_that_times_out_names_what_matched_and_what_did_not() {
    let (env, _) = environment(true).await;
    let steps = r#"
  - wait:
      kind: AzureAssignedIdentity
      count: 2
      fields: {status.status: Assigned}
      timeout: 500ms
"#;
    let report = run_one(
        &env,
        assigned_identities("times-out", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Failed, "{report:#?}");
    let failure = &report.steps[0].failures[0];
    assert_eq!(failure.expectation, "wait");
    assert!(
        failure.actual.starts_with("1 matching: [app-"),
        "{failure:?}"
    );
    assert!(
        failure.actual.contains("1 not matching: [other-")
            && failure.actual.ends_with("(status.status=Created)]"),
        "{failure:?}"
    );
}
