//! Scenarios that use every key of the language are accepted: the validator's rules reject the
//! mistakes in `tests/invalid`, not the features themselves.

use std::path::Path;

#[test]
fn every_file_in_the_valid_catalogue_is_accepted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid");
    let files = podid_scenario::discover(&[dir]).unwrap();
    assert!(
        files.len() >= 2,
        "expected the valid catalogue, found {files:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        if let Err(problems) = podid_scenario::load_str(&file, &text) {
            let lines: Vec<String> = problems.problems.iter().map(|p| p.one_line()).collect();
            panic!("{} is rejected:\n{}", file.display(), lines.join("\n"));
        }
    }
}

#[test]
fn pod_groups_stand_for_their_members() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid");
    let loaded = podid_scenario::load_file(&dir.join("standard-every-new-key.yaml")).unwrap();
    let (name, workers) = loaded
        .scenario
        .cluster
        .pods
        .get_key_value("workers")
        .unwrap();
    assert_eq!(
        workers.member_names(name),
        ["workers-0", "workers-1", "workers-2"]
    );
    assert_eq!(loaded.scenario.mic.replica_count(), 2);
}

#[test]
fn new_keys_are_read_with_their_positions() {
    use podid_scenario::{Action, ClientKind, HeaderValue, MIC_PRINCIPAL, Role, Service};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid");
    let s = podid_scenario::load_file(&dir.join("clients-faults-security.yaml"))
        .unwrap()
        .scenario;
    let text = std::fs::read_to_string(dir.join("clients-faults-security.yaml")).unwrap();
    let line_of = |needle: &str| {
        let index = text.lines().position(|l| l.contains(needle)).unwrap();
        u32::try_from(index + 1).unwrap()
    };

    let Some(Action::Exec(exec)) = s.steps[0].action() else {
        panic!("the first step is an exec step");
    };
    assert_eq!(
        exec.client.as_ref().map(|c| c.value),
        Some(ClientKind::Python)
    );
    assert_eq!(exec.args[0].value, "token");
    assert!(exec.command.is_empty());
    assert_eq!(exec.env["AZURE_LOG_LEVEL"].value, "warning");
    let expect = s.steps[0].expect.as_ref().unwrap();
    assert_eq!(expect.exit_code.as_ref().map(|c| c.value), Some(0));
    assert!(expect.stdout.as_ref().unwrap().json.is_some());

    assert_eq!(s.faults.len(), 1);
    assert_eq!(s.faults[0].service.value, Service::Aad);
    assert_eq!(s.faults[0].at.line, line_of("- service: aad"));
    let disconnect = &s.steps[2].faults[0];
    assert!(disconnect.disconnect && disconnect.status.is_none());
    let throttle = &s.steps[4].faults[0];
    assert_eq!(throttle.status.as_ref().map(|s| s.value), Some(429));
    assert_eq!(throttle.retry_after.as_deref(), Some("1"));

    let Some(Action::Token(token)) = s.steps[5].action() else {
        panic!("the sixth step is a token step");
    };
    let metadata: Vec<(&str, u32)> = token.headers["Metadata"]
        .values()
        .map(|v| (v.as_str(), v.at.line))
        .collect();
    let at = line_of("Metadata: [");
    assert_eq!(metadata, [("false", at), ("true", at)]);
    match &token.headers["X-Request-Id"] {
        HeaderValue::One(v) => assert_eq!(
            (v.as_str(), v.at.line, v.at.column),
            ("abc", line_of("X-Request-Id:"), 23)
        ),
        other => panic!("one value expected, got {other:?}"),
    }

    let mic: Vec<Role> = s
        .cloud
        .role_assignments
        .iter()
        .filter(|r| r.principal.as_str() == MIC_PRINCIPAL)
        .map(|r| r.role.value)
        .collect();
    assert_eq!(
        mic,
        [
            Role::VirtualMachineContributor,
            Role::ManagedIdentityOperator
        ]
    );
    assert!(mic.iter().all(|r| r.is_arm()));
    assert!(s.cloud.role_assignments[0].account.is_some());
    let arm = s.cloud.arm.as_ref().unwrap();
    assert!(arm.authorization);
    assert_eq!(arm.poll_count(), 2);
    assert_eq!(
        s.cloud
            .imds
            .as_ref()
            .unwrap()
            .propagation_delay
            .map(|d| d.0),
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(
        s.cluster.pods["stale"].ip_of.as_ref().map(|p| p.as_str()),
        Some("app")
    );
}

#[test]
fn unquoted_header_values_are_sent_as_written() {
    let text = "name: headers\ncluster:\n  pods:\n    app: {node: node-0}\nsteps:\n  - token:\n      pod: app\n      metadataHeader: false\n      headers: {Metadata: true, X-Count: 3}\n    expect: {status: 400}\n";
    let s = podid_scenario::load_str(Path::new("h.yaml"), text)
        .unwrap()
        .scenario;
    let token = s.steps[0].token.as_ref().unwrap();
    let sent: Vec<(&str, &str, u32)> = token
        .headers
        .iter()
        .flat_map(|(k, v)| v.values().map(move |v| (k.as_str(), v.as_str(), v.at.line)))
        .collect();
    assert_eq!(sent, [("Metadata", "true", 9), ("X-Count", "3", 9)]);
}
