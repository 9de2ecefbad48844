//! The runner's own rules, checked against the fake cluster side and the real in-process mock
//! cloud: no root, no network namespaces, no processes.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use podid_reports::{Outcome, Reporter, RunReport, ScenarioReport, StepReport};
use podid_scenario::ScenarioFile;

use super::{Environment, Plan, run_trial, trials};
use crate::lifecycle;
use crate::provider::fake;

mod cloud;
mod components;
mod faults;
mod groups;
mod objects;
mod sharing;

pub(super) fn scenario(name: &str, text: &str) -> ScenarioFile {
    podid_scenario::load_str(Path::new(&format!("scenarios/{name}.yaml")), text)
        .unwrap_or_else(|p| panic!("{name} is invalid: {p:?}"))
}

/// How a test scenario's one bound pod is set up.
#[derive(Clone, Copy)]
pub(super) struct Bound<'a> {
    pub mode: &'a str,
    /// The binding's selector and the pod's `aadpodidbinding` label.
    pub selector: &'a str,
    /// More keys of pod `app` (e.g. `replicas: 3`).
    pub pod: &'a str,
    /// More top-level keys of the scenario (e.g. `nmi: {flags: [...]}`).
    pub extra: &'a str,
}

impl Default for Bound<'_> {
    fn default() -> Self {
        Self {
            mode: "managed",
            selector: "reader",
            pod: "",
            extra: "",
        }
    }
}

/// A bound identity on node-0 and pod `app` there, as `bound` says; `steps` follows.
pub(super) fn bound_scenario(name: &str, bound: Bound<'_>, steps: &str) -> ScenarioFile {
    let Bound {
        mode,
        selector,
        pod,
        extra,
    } = bound;
    let pod = if pod.is_empty() {
        String::new()
    } else {
        format!(", {pod}")
    };
    scenario(
        name,
        &format!(
            r#"
name: {name}
modes: [{mode}]
{extra}
cloud:
  identities:
    reader: {{}}
  nodeIdentities:
    node-0: [reader]
cluster:
  azureIdentities:
    reader: {{identity: reader}}
  azureIdentityBindings:
    reader-binding: {{azureIdentity: reader, selector: {selector}}}
  pods:
    app: {{node: node-0, labels: {{aadpodidbinding: {selector}}}{pod}}}
steps:
{steps}
"#
        ),
    )
}

/// [`bound_scenario`] in managed mode with `extra` top-level keys.
pub(super) fn token_scenario(name: &str, extra: &str, steps: &str) -> ScenarioFile {
    bound_scenario(
        name,
        Bound {
            extra,
            ..Bound::default()
        },
        steps,
    )
}

pub(super) const GOOD_TOKEN: &str = r#"
  - token: {pod: app, resource: "https://storage.azure.com/", clientId: "${identities.reader.clientId}"}
    expect:
      status: 200
      token:
        claims:
          appid: ${identities.reader.clientId}
"#;

/// Every event, in arrival order.
#[derive(Default)]
pub(super) struct Recorder(pub(super) Mutex<Vec<String>>);

impl Reporter for Recorder {
    fn scenario_started(&self, scenario: &str) {
        self.0.lock().unwrap().push(format!("started {scenario}"));
    }
    fn step_finished(&self, scenario: &str, step: &StepReport) {
        self.0
            .lock()
            .unwrap()
            .push(format!("step {scenario} {} {:?}", step.index, step.status));
    }
    fn scenario_finished(&self, scenario: &ScenarioReport) {
        self.0
            .lock()
            .unwrap()
            .push(format!("finished {} {:?}", scenario.name, scenario.status));
    }
}

pub(super) async fn environment(
    with_request_log: bool,
) -> (Environment, &'static fake::FakeCluster) {
    let (provider, cluster) = fake::provider(with_request_log).await;
    let dir = std::env::temp_dir().join(format!("podid-runner-test-{}", std::process::id()));
    (Environment::new(provider, "test01".into(), dir), cluster)
}

pub(super) async fn run_one(
    env: &Environment,
    file: ScenarioFile,
    reporter: &dyn Reporter,
) -> ScenarioReport {
    let plan = env.plan(trials(&[file]));
    assert_eq!(plan.trials.len(), 1);
    run_trial(env, &plan.trials[0], reporter).await
}

#[tokio::test]
async fn a_passing_trial_reports_events_in_order() {
    let (env, cluster) = environment(true).await;
    let two = format!("{GOOD_TOKEN}{GOOD_TOKEN}");
    let recorder = Recorder::default();
    let report = run_one(&env, token_scenario("events", "", &two), &recorder).await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            "started fake::managed::events",
            "step events 1 Passed",
            "step events 2 Passed",
            "finished events Passed",
        ]
    );
    assert_eq!(cluster.configured.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn steps_after_a_failure_are_skipped() {
    let (env, _) = environment(true).await;
    let steps = format!(
        r#"
  - token: {{pod: app, resource: "https://storage.azure.com/", clientId: "${{identities.reader.clientId}}"}}
    expect: {{status: 404}}
{GOOD_TOKEN}"#
    );
    let report = run_one(
        &env,
        token_scenario("fails", "", &steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Failed);
    let statuses: Vec<Outcome> = report.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [Outcome::Failed, Outcome::Skipped]);
    let failure = &report.steps[0].failures[0];
    assert_eq!(failure.expectation, "status");
    assert!(failure.actual.starts_with("200"), "{failure:?}");
    assert!(
        !report.attachments.is_empty(),
        "a failure saves diagnostics"
    );
}

#[tokio::test]
async fn a_cleanup_failure_turns_a_pass_into_errored() {
    let (env, cluster) = environment(true).await;
    cluster.objects.fail_deletes.store(true, Ordering::SeqCst);
    let report = run_one(
        &env,
        token_scenario("dirty", "", GOOD_TOKEN),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Errored, "{report:#?}");
    let last = report.steps.last().unwrap();
    assert_eq!(last.kind, "cleanup");
    assert!(last.failures[0].actual.contains("refused"), "{last:?}");
}

#[tokio::test]
async fn a_request_that_could_not_be_made_fails_whatever_the_step_expects() {
    let (env, cluster) = environment(true).await;
    *cluster.unreachable_node.lock().unwrap() = Some("node-0".into());
    let steps = r#"
  - token: {pod: app, resource: "https://storage.azure.com/"}
    expect: {maxLatency: 1m}
"#;
    let report = run_one(
        &env,
        token_scenario("unreachable", "", steps),
        &Recorder::default(),
    )
    .await;
    assert_eq!(report.status, Outcome::Errored, "{report:#?}");
    let message = &report.steps[0].failures[0].message;
    assert!(
        message.starts_with("the request could not be made"),
        "{message}"
    );
}

#[tokio::test]
async fn nmi_leaving_its_chain_fails_the_trial_that_reconfigured_it() {
    let (env, cluster) = environment(true).await;
    cluster.nmi_leaves_chain.store(true, Ordering::SeqCst);
    let first = run_one(
        &env,
        token_scenario("plain", "", GOOD_TOKEN),
        &Recorder::default(),
    )
    .await;
    assert_eq!(
        first.status,
        Outcome::Passed,
        "nothing was stopped for the first trial"
    );
    let flagged = token_scenario(
        "flagged",
        "nmi: {flags: [--set-retry-after-header]}",
        GOOD_TOKEN,
    );
    let second = run_one(&env, flagged, &Recorder::default()).await;
    assert_eq!(second.status, Outcome::Failed, "{second:#?}");
    assert_eq!(second.steps[0].kind, "configure");
    assert_eq!(second.steps[0].failures.len(), 2, "one per node");
    assert_eq!(second.steps[1].status, Outcome::Skipped);
}

#[tokio::test]
async fn the_plan_groups_trials_by_configuration_and_the_gate_configures_each_once() {
    let (env, cluster) = environment(true).await;
    let flagged = "nmi: {flags: [--set-retry-after-header]}";
    let files = [
        token_scenario("a1", "", GOOD_TOKEN),
        token_scenario("b1", flagged, GOOD_TOKEN),
        token_scenario("a2", "", GOOD_TOKEN),
    ];
    let plan = env.plan(trials(&files));
    let order: Vec<&str> = plan.trials.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "fake::managed::a1",
            "fake::managed::a2",
            "fake::managed::b1"
        ]
    );
    let reports = lifecycle::run(&env, &plan, 2, &Recorder::default()).await;
    assert!(
        reports.iter().all(|r| r.status == Outcome::Passed),
        "{reports:#?}"
    );
    let configured = cluster.configured.lock().unwrap();
    let flags: Vec<&[String]> = configured.iter().map(|c| c.nmi_flags.as_slice()).collect();
    assert_eq!(
        flags,
        [&[][..], &["--set-retry-after-header".to_string()][..]]
    );
}

#[tokio::test]
async fn a_trial_needing_the_request_log_is_skipped_with_the_reason_in_every_report() {
    let (env, cluster) = environment(false).await;
    let steps = format!(
        r#"{GOOD_TOKEN}      requests:
        - service: imds
          node: node-0
          count: 1
"#
    );
    let file = token_scenario("counts", "", &steps);
    let recorder = Recorder::default();
    let report = run_one(&env, file, &recorder).await;
    assert_eq!(report.status, Outcome::Skipped);
    let reason = report.skip_reason.clone().unwrap();
    assert!(reason.contains("provider `fake` lacks"), "{reason}");
    assert!(reason.contains("the cloud's request log"), "{reason}");
    assert!(
        reason.contains("step 1 expects cloud requests (scenarios/counts.yaml:"),
        "{reason}"
    );
    assert_eq!(*recorder.0.lock().unwrap(), ["finished counts Skipped"]);
    assert!(
        cluster.configured.lock().unwrap().is_empty(),
        "a skipped trial configures nothing"
    );

    let run = RunReport {
        run_id: "test01".into(),
        provider: "fake".into(),
        started_at: chrono::Utc::now(),
        duration: std::time::Duration::ZERO,
        environment: Vec::new(),
        scenarios: vec![report],
    };
    assert_eq!(run.counts().skipped, 1);
    let junit = podid_reports::render_junit(&run).unwrap();
    assert!(
        junit.contains("<skipped message=\"provider `fake` lacks"),
        "{junit}"
    );
    let json = podid_reports::render_json(&run);
    assert!(
        json.contains("\"skipped\"") && json.contains("the cloud's request log"),
        "{json}"
    );
    let markdown = podid_reports::render_markdown(&run);
    assert!(markdown.contains("the cloud's request log"), "{markdown}");
}

#[test]
fn requirements_come_from_the_scenario() {
    let file = token_scenario(
        "needs",
        "nmi: {flags: [--block-instance-metadata]}",
        GOOD_TOKEN,
    );
    let plan = Plan::new(trials(&[file]), "none", &Default::default());
    let reason = plan.trials[0].skip.clone().unwrap();
    for needed in [
        "NMI in managed mode",
        "arbitrary NMI/MIC flags: nmi.flags sets `--block-instance-metadata`",
        "a machine per node whose identities can be set",
    ] {
        assert!(reason.contains(needed), "{needed} missing from {reason}");
    }
}
