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
