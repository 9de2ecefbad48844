//! The committed scenarios are valid, and every file in the catalogue of invalid scenarios is
//! rejected with a `file:line:col` message and a hint (snapshotted, so wording changes are reviewed).

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn committed_scenarios_are_valid() {
    let dir = repo_root().join("scenarios");
    let files = podid_scenario::discover(&[dir]).expect("scenarios/ exists");
    assert!(
        files.len() >= 3,
        "expected the core scenarios, found {files:?}"
    );
    let (loaded, problems) = podid_scenario::load_all(&files);
    let text: Vec<String> = problems
        .iter()
        .flat_map(|f| f.problems.iter().map(|p| p.one_line()))
        .collect();
    assert!(text.is_empty(), "invalid scenarios:\n{}", text.join("\n"));
    assert_eq!(loaded.len(), files.len());
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(repo_root().join("scenarios/schema.json"))
        .expect("scenarios/schema.json is committed");
    assert!(
        committed == podid_scenario::schema_json(),
        "scenarios/schema.json is stale: run `cargo run -p podid -- schema > scenarios/schema.json`"
    );
}

#[test]
fn every_committed_scenario_has_the_schema_modeline() {
    let files = podid_scenario::discover(&[repo_root().join("scenarios")]).unwrap();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=./schema.json"),
            "{} lacks the schema modeline",
            f.display()
        );
    }
}

#[test]
fn invalid_catalogue_is_rejected_with_positions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let files = podid_scenario::discover(&[dir]).unwrap();
    assert!(files.len() >= 10);
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = PathBuf::from(format!("invalid/{name}.yaml"));
        let problems = podid_scenario::load_str(&shown, &text)
            .expect_err(&format!("{name} must be rejected"))
            .problems;
        for p in &problems {
            assert!(
                p.at.line >= 1 && p.at.column >= 1,
                "{name}: no position in {p}"
            );
            assert!(p.help.is_some(), "{name}: no hint in {p}");
        }
        let lines: Vec<String> = problems.iter().map(|p| p.one_line()).collect();
        let rendered = podid_scenario::render_plain(&problems);
        insta::assert_snapshot!(
            name.clone(),
            format!("{}\n\n{}", lines.join("\n"), rendered)
        );
    }
}
