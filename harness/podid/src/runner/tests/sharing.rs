//! Which trials share the cluster, request attribution for those that do, NMI/MIC flags
//! rendered per trial, steps limited to some modes, and what a trial needs from its provider.

use podid_reports::Outcome;

use super::{Bound, GOOD_TOKEN, Recorder, bound_scenario, environment, scenario, token_scenario};
use crate::lifecycle;
use crate::provider::Capabilities;
use crate::runner::{Plan, PlannedTrial, trials};

fn planned(file: podid_scenario::ScenarioFile) -> PlannedTrial {
    let plan = Plan::new(trials(&[file]), "fake", &Capabilities::default());
    plan.trials.into_iter().next().unwrap()
}

/// Why a trial with `steps` (on the usual bound pod) runs alone, if it does.
fn exclusive(extra: &str, steps: &str) -> Option<String> {
    planned(token_scenario("sharing", extra, steps)).exclusive_reason
}

#[test]
fn only_trials_whose_request_counts_are_attributable_share_the_cluster() {
    let own = |r: &str| format!("{GOOD_TOKEN}      requests: [{r}]\n");
    assert_eq!(exclusive("", GOOD_TOKEN), None);
    for shared in [
        "{service: imds, clientId: '${identities.reader.clientId}', count: 1}",
        "{service: aad, clientId: '${identities.reader.clientId}', count: 0}",
        "{service: blob, count: 0}",
        "{service: arm, method: PATCH, since: trial, count: 0}",
    ] {
        assert_eq!(exclusive("", &own(shared)), None, "{shared}");
    }
    for (alone, why) in [
        (
            "{service: imds, count: 0}",
            "counts imds requests without `clientId`",
        ),
        (
            "{service: arm, method: GET, count: 0}",
            "without `clientId` or method PATCH/PUT",
        ),
        (
            "{service: imds, clientId: 00000000-0000-0000-0000-000000000001, count: 0}",
            "not one of the scenario's own unpinned ones",
        ),
    ] {
        let reason = exclusive("", &own(alone)).unwrap_or_default();
        assert!(reason.contains(why), "{alone}: {reason}");
        assert!(reason.starts_with("step 1 "), "{reason}");
    }
    let waits = "  - wait: {requests: [{service: imds, since: trial, count: 0}]}\n";
    assert!(exclusive("", waits).is_some());
    let restart = format!("  - restart: {{component: nmi, node: node-0}}\n{GOOD_TOKEN}");
    let reason = exclusive("", &restart).unwrap_or_default();
    assert!(reason.contains("step 1 restarts nmi"), "{reason}");
    let system = format!("  - cloud: {{enableSystemAssigned: node-1}}\n{GOOD_TOKEN}");
    assert!(exclusive("", &system).is_some());
    let own_assign =
        format!("  - cloud: {{assign: {{identity: reader, node: node-1}}}}\n{GOOD_TOKEN}");
    assert_eq!(exclusive("", &own_assign), None);
}

#[test]
fn a_pinned_client_id_cannot_tell_the_trials_requests_apart() {
    let file = scenario(
        "pinned",
        r#"
name: pinned
cloud:
  identities:
    reader: {clientId: 11111111-2222-3333-4444-555555555555}
steps:
  - wait:
      requests: [{service: imds, clientId: "${identities.reader.clientId}", count: 0}]
"#,
    );
    let reason = planned(file).exclusive_reason.unwrap_or_default();
    assert!(reason.contains("unpinned"), "{reason}");
}

/// A trial that asks twice with a pause between, counting its requests since it began.
const SLOW_TWICE: &str = r#"
  - token: {pod: app, resource: "https://vault.azure.net", clientId: "${identities.reader.clientId}"}
    expect: {status: 200}
  - sleep: 400ms
  - token: {pod: app, resource: "https://vault.azure.net", clientId: "${identities.reader.clientId}"}
    expect:
      status: 200
      requests:
        - {service: imds, node: node-0, clientId: "${identities.reader.clientId}", since: trial, count: 2}
"#;

/// A trial that asks once, at once.
const FAST_ONCE: &str = r#"
  - token: {pod: app, resource: "https://vault.azure.net", clientId: "${identities.reader.clientId}"}
    expect:
      status: 200
      requests:
        - {service: imds, node: node-0, clientId: "${identities.reader.clientId}", count: 1}
        - {service: imds, node: node-0, clientId: "${identities.reader.clientId}", since: trial, count: 1}
"#;

/// Runs `plan` two at a time; the events, and how many IMDS requests the cloud got in all.
async fn run_together(env: &crate::runner::Environment, plan: &Plan) -> (Vec<String>, usize) {
    let recorder = Recorder::default();
    let reports = lifecycle::run(env, plan, 2, &recorder).await;
    for r in &reports {
        assert_eq!(r.status, Outcome::Passed, "{r:#?}");
    }
    let log = env.provider.cloud.request_log().unwrap();
    let imds = log
        .since(0)
        .iter()
        .filter(|r| r.service == podid_scenario::Service::Imds)
        .count();
    let events = recorder.0.lock().unwrap().clone();
    (events, imds)
}

/// Whether `slow` started before `fast` finished and finished after it: they overlapped.
fn overlapped(events: &[String], slow: &str, fast: &str) -> bool {
    let at = |e: &str| events.iter().position(|x| x.starts_with(e)).unwrap();
    at(&format!("started fake::managed::{slow}")) < at(&format!("finished {fast}"))
        && at(&format!("finished {fast}")) < at(&format!("finished {slow}"))
}

#[tokio::test]
async fn two_trials_counting_their_own_imds_requests_run_together_and_each_sees_its_own() {
    let (env, _) = environment(true).await;
    let files = [
        token_scenario("slow", "", SLOW_TWICE),
        token_scenario("fast", "", FAST_ONCE),
    ];
    let plan = env.plan(trials(&files));
    assert!(plan.trials.iter().all(|t| !t.exclusive), "{plan:#?}");
    let (events, imds) = run_together(&env, &plan).await;
    assert!(overlapped(&events, "slow", "fast"), "{events:#?}");
    assert_eq!(imds, 3);
}

#[tokio::test]
async fn a_shared_trial_counts_only_the_requests_attributed_to_it() {
    let (env, _) = environment(true).await;
    // Counting every IMDS request on node-0 cannot be attributed: the plan keeps it alone.
    let counts_all = SLOW_TWICE.replace(
        r#"clientId: "${identities.reader.clientId}", since: trial"#,
        "since: trial",
    );
    let files = [
        token_scenario("slow", "", &counts_all),
        token_scenario("fast", "", FAST_ONCE),
    ];
    let mut plan = env.plan(trials(&files));
    let slow = plan
        .trials
        .iter_mut()
        .find(|t| t.name.ends_with("slow"))
        .unwrap();
    assert!(slow.exclusive);
    // Shared anyway: it sees its own two requests, not the other trial's.
    slow.exclusive = false;
    slow.exclusive_reason = None;
    let (events, imds) = run_together(&env, &plan).await;
    assert!(overlapped(&events, "slow", "fast"), "{events:#?}");
    assert_eq!(imds, 3, "the other trial's request came in meanwhile");
}

#[tokio::test]
async fn flags_with_references_are_rendered_for_the_trial() {
    let (env, cluster) = environment(true).await;
    let file = token_scenario(
        "rendered",
        r#"nmi: {flags: ["--immutable=${identities.reader.clientId}", "--plain"]}"#,
        GOOD_TOKEN,
    );
    let plan = env.plan(trials(std::slice::from_ref(&file)));
    assert_eq!(
        plan.trials[0].config.nmi_flags,
        ["--immutable=${identities.reader.clientId}", "--plain"],
        "the plan groups by the flags as written"
    );
    let report = super::run_one(&env, file, &Recorder::default()).await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    let configured = cluster.configured.lock().unwrap();
    let flags = &configured.last().unwrap().nmi_flags;
    let id = flags[0].strip_prefix("--immutable=").unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{flags:?}");
    assert_eq!(flags[1], "--plain");
}

#[tokio::test]
async fn a_step_of_another_mode_is_reported_not_applicable() {
    let (env, _) = environment(true).await;
    let file = scenario(
        "moded",
        r#"
name: moded
modes: [managed, standard]
cloud:
  identities:
    reader: {}
  nodeIdentities:
    node-0: [reader]
cluster:
  pods:
    app: {node: node-0}
steps:
  - token: {pod: app, resource: "https://vault.azure.net", clientId: "${identities.reader.clientId}"}
    expect: {status: 200}
  - modes: [standard]
    token: {pod: app, resource: "https://vault.azure.net"}
    expect: {status: 404}
"#,
    );
    let plan = env.plan(trials(&[file]));
    let managed = plan
        .trials
        .iter()
        .find(|t| t.name.contains("managed"))
        .unwrap();
    let report = crate::runner::run_trial(&env, managed, &Recorder::default()).await;
    assert_eq!(report.status, Outcome::Passed, "{report:#?}");
    assert_eq!(report.steps[1].status, Outcome::Skipped);
    assert_eq!(
        report.steps[1].output.as_deref(),
        Some("not applicable in managed mode")
    );
}

#[test]
fn each_addition_needs_its_capability_and_says_where() {
    let file = scenario(
        "needs-all",
        r#"
name: needs-all
modes: [standard]
mic: {replicas: 2, flags: ["--x=${cloud.clusterIdentityClientId}"]}
cloud:
  identities:
    reader: {}
cluster:
  pods:
    app: {node: node-0, phase: Pending}
steps:
  - cloud: {assign: {identity: reader, node: node-1}}
    expect:
      nodeIdentities: {node-1: {has: [reader]}}
  - stop: {component: nmi, node: node-0}
    expect: {iptables: {node-0: absent}}
  - health: {component: nmi}
    expect: {status: 200}
"#,
    );
    let reason = planned(file).skip.unwrap();
    for needed in [
        "two MIC replicas with leader election: mic.replicas is 2 (scenarios/needs-all.yaml:",
        "pods that stay in phase Pending: pod `app` stays Pending",
        "a cluster identity MIC must not remove: flag `--x=${cloud.clusterIdentityClientId}`",
        "cloud changes mid-scenario: step 1 changes the cloud",
        "a machine per node whose identities can be set: step 1 changes a node's machine",
        "component restarts mid-scenario: step 2 stops nmi",
        "reading a node's iptables: step 2 expects NMI's iptables chain",
        "component health endpoints: step 3 reads component health",
    ] {
        assert!(reason.contains(needed), "{needed} missing from {reason}");
    }
}

/// A standard-mode trial binding `selector`, pausing between two requests.
fn standard_with_selector(name: &str, selector: &str) -> podid_scenario::ScenarioFile {
    bound_scenario(
        name,
        Bound {
            mode: "standard",
            selector,
            ..Bound::default()
        },
        SLOW_TWICE,
    )
}

/// Whether the two trials' steps interleaved.
fn interleaved(events: &[String], a: &str, b: &str) -> bool {
    let steps: Vec<&str> = events
        .iter()
        .filter_map(|e| e.strip_prefix("step "))
        .filter_map(|e| e.split(' ').next())
        .collect();
    let first_b = steps.iter().position(|s| *s == b).unwrap();
    let last_a = steps.iter().rposition(|s| *s == a).unwrap();
    let first_a = steps.iter().position(|s| *s == a).unwrap();
    let last_b = steps.iter().rposition(|s| *s == b).unwrap();
    first_b < last_a && first_a < last_b
}

#[tokio::test]
async fn standard_trials_binding_the_same_selector_share_the_cluster() {
    // Each trial's selector is its own (`runner::pods`, `objects::with_trial_selectors`), so
    // a shared MIC cannot match one trial's binding to the other's pods.
    let (env, _) = environment(true).await;
    let files = [
        standard_with_selector("first", "shared-selector"),
        standard_with_selector("second", "shared-selector"),
    ];
    let plan = env.plan(trials(&files));
    assert!(plan.trials.iter().all(|t| !t.exclusive), "{plan:#?}");
    let (events, _) = run_together(&env, &plan).await;
    assert!(interleaved(&events, "first", "second"), "{events:#?}");
}

#[test]
fn the_longest_trials_start_first_within_a_shared_run() {
    let files = [
        token_scenario("short", "", GOOD_TOKEN),
        token_scenario("long", "", GOOD_TOKEN),
        token_scenario("new", "", GOOD_TOKEN),
        token_scenario(
            "alone",
            "",
            &SLOW_TWICE.replace(
                r#"clientId: "${identities.reader.clientId}", since: trial"#,
                "since: trial",
            ),
        ),
    ];
    let mut plan = Plan::new(trials(&files), "fake", &Capabilities::default());
    let past = [
        ("managed::short", 1),
        ("managed::long", 9),
        ("managed::alone", 30),
    ]
    .map(|(k, s)| (k.to_string(), std::time::Duration::from_secs(s)))
    .into();
    plan.longest_first(&past);
    let order: Vec<&str> = plan
        .trials
        .iter()
        .map(|t| t.name.rsplit("::").next().unwrap())
        .collect();
    // Never timed counts as longest; the trial that runs alone stays after the shared ones.
    assert_eq!(order, ["new", "long", "short", "alone"]);
}

#[test]
fn a_standard_trial_with_many_pods_runs_alone() {
    let many = |replicas: u32| {
        scenario(
            "many",
            &format!(
                r#"
name: many
modes: [standard]
cluster:
  pods:
    app: {{node: node-0, replicas: {replicas}}}
steps:
  - wait: {{kind: AzureAssignedIdentity, count: 0}}
"#
            ),
        )
    };
    let reason = planned(many(11)).exclusive_reason.unwrap_or_default();
    assert!(reason.contains("it creates 11 pods"), "{reason}");
    assert_eq!(planned(many(10)).exclusive_reason, None);
}
