//! The `podid` command line as a user meets it: validation of the committed and the invalid
//! scenarios, the schema, listing and filtering, and misuse. Nothing here starts a cluster or
//! needs root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

fn scenarios_dir() -> PathBuf {
    repo_root().join("scenarios")
}

fn invalid_dir() -> PathBuf {
    repo_root().join("harness/scenario/tests/invalid")
}

/// Runs `podid` with `args` from the repository root.
fn podid<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_podid"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("PODID_LOG")
        .env_remove("PODID_CLOUD")
        .output()
        .expect("podid starts")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn describe(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// The `*.yaml` files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// The value of a top-level `key:` line of a scenario file, read as text (independently of the
/// loader under test).
fn top_level(text: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
}

/// `(name, tags)` of every committed scenario.
fn committed_scenarios() -> Vec<(String, Vec<String>)> {
    let files = yaml_files(&scenarios_dir());
    assert!(
        files.len() >= 3,
        "expected the committed scenarios, found {files:?}"
    );
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let name = top_level(&text, "name")
                .unwrap_or_else(|| panic!("{} has no top-level name", f.display()));
            let tags = top_level(&text, "tags")
                .map(|t| {
                    let inner = t
                        .strip_prefix('[')
                        .and_then(|t| t.strip_suffix(']'))
                        .unwrap_or_else(|| {
                            panic!("{}: tags are not a flow list: {t}", f.display())
                        });
                    inner
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            (name, tags)
        })
        .collect()
}

/// Every `<path>:<line>:<col>` in `text` for this path, as `(line, col)`.
fn positions(text: &str, path: &Path) -> Vec<(u32, u32)> {
    let needle = format!("{}:", path.display());
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        rest = &rest[i + needle.len()..];
        let line: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let after = &rest[line.len()..];
        if line.is_empty() || !after.starts_with(':') {
            continue;
        }
        let col: String = after[1..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if col.is_empty() {
            continue;
        }
        out.push((line.parse().unwrap(), col.parse().unwrap()));
    }
    out
}

/// The first column of each non-empty stdout line of `podid list`.
fn listed_names(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// A usage failure: exit code 2, a one-line reason first (not a panic), nothing on stdout.
fn assert_usage_failure(o: &Output, reason: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", describe(o));
    let err = stderr(o);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains(reason),
        "the first line of stderr should give the reason `{reason}`:\n{}",
        describe(o)
    );
    assert!(!err.contains("panicked"), "{}", describe(o));
    assert!(stdout(o).trim().is_empty(), "{}", describe(o));
}

#[test]
fn validate_accepts_the_committed_scenarios_and_names_each_file() {
    let dir = scenarios_dir();
    let o = podid([Path::new("validate"), &dir]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let out = stdout(&o);
    let files = yaml_files(&dir);
    for (file, (name, _)) in files.iter().zip(committed_scenarios()) {
        let expected = format!("ok  {}  ({name})", file.display());
        assert!(
            out.lines().any(|l| l == expected),
            "missing `{expected}`:\n{}",
            describe(&o)
        );
    }
    assert!(
        out.contains(&format!("{} scenario file(s) valid", files.len())),
        "{}",
        describe(&o)
    );
    assert!(
        stderr(&o).trim().is_empty(),
        "valid files give no diagnostics:\n{}",
        describe(&o)
    );
}

#[test]
fn validate_rejects_every_invalid_file_with_a_position_and_a_hint() {
    let files = yaml_files(&invalid_dir());
    assert!(
        files.len() >= 10,
        "expected the invalid catalogue, found {files:?}"
    );
    let mut failures = Vec::new();
    for file in &files {
        let o = podid([Path::new("validate"), file]);
        let err = stderr(&o);
        let lines_in_file = std::fs::read_to_string(file).unwrap().lines().count() as u32;
        let at = positions(&err, file);
        let mut wrong = Vec::new();
        if o.status.code() != Some(1) {
            wrong.push(format!("exit code {:?}, expected 1", o.status.code()));
        }
        if at.is_empty() {
            wrong.push("no `<path>:<line>:<col>` on stderr".to_string());
        }
        if let Some((l, c)) = at
            .iter()
            .find(|(l, c)| *l == 0 || *c == 0 || *l > lines_in_file.max(1))
        {
            wrong.push(format!(
                "position {l}:{c} is not in the file ({lines_in_file} lines)"
            ));
        }
        if !err.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("help:") || l.starts_with("hint:")
        }) {
            wrong.push("no help/hint line".to_string());
        }
        if err.contains("panicked") {
            wrong.push("panicked".to_string());
        }
        if stdout(&o).contains("ok  ") {
            wrong.push("reported as ok on stdout".to_string());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n{}",
                file.display(),
                wrong.join("; "),
                describe(&o)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn validate_of_a_mix_reports_only_the_invalid_file() {
    let good = scenarios_dir().join("bound-pod-gets-token.yaml");
    let bad = invalid_dir().join("undefined-pod.yaml");
    let o = podid([Path::new("validate"), &good, &bad]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        stdout(&o).contains(&format!("ok  {}", good.display())),
        "{}",
        describe(&o)
    );
    assert!(!positions(&stderr(&o), &bad).is_empty(), "{}", describe(&o));
    assert!(
        positions(&stderr(&o), &good).is_empty(),
        "the valid file has no problems:\n{}",
        describe(&o)
    );
}

#[test]
fn schema_prints_the_committed_schema_byte_for_byte() {
    let o = podid(["schema"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let committed = std::fs::read(scenarios_dir().join("schema.json")).unwrap();
    assert!(
        o.stdout == committed,
        "`podid schema` differs from scenarios/schema.json \
         (regenerate with `cargo run -p podid -- schema > scenarios/schema.json`)"
    );
    let parsed: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the schema is JSON");
    assert!(parsed.get("properties").is_some() || parsed.get("$defs").is_some());
}

#[test]
fn list_shows_every_scenario() {
    let dir = scenarios_dir();
    let o = podid([Path::new("list"), Path::new("--scenarios"), &dir]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let mut expected: Vec<String> = committed_scenarios().into_iter().map(|(n, _)| n).collect();
    expected.sort();
    let mut listed = listed_names(&o);
    listed.sort();
    assert_eq!(listed, expected, "{}", describe(&o));
    for (name, tags) in committed_scenarios() {
        let line = stdout(&o)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .map(String::from)
            .unwrap();
        for tag in tags {
            assert!(line.contains(&tag), "`{name}` lacks tag `{tag}`: {line}");
        }
    }
}

#[test]
fn list_filters_by_tag() {
    let dir = scenarios_dir();
    let o = podid([
        Path::new("list"),
        Path::new("--scenarios"),
        &dir,
        Path::new("--tag"),
        Path::new("smoke"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let all = committed_scenarios();
    let mut expected: Vec<String> = all
        .iter()
        .filter(|(_, tags)| tags.iter().any(|t| t == "smoke"))
        .map(|(n, _)| n.clone())
        .collect();
    expected.sort();
    assert!(
        !expected.is_empty() && expected.len() < all.len(),
        "the committed scenarios should have some, not all, tagged smoke: {all:?}"
    );
    let mut listed = listed_names(&o);
    listed.sort();
    assert_eq!(listed, expected, "{}", describe(&o));

    let o = podid([
        Path::new("list"),
        Path::new("--scenarios"),
        &dir,
        Path::new("--tag"),
        Path::new("no-such-tag"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(listed_names(&o).is_empty(), "{}", describe(&o));
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let o = podid(["frobnicate"]);
    assert_usage_failure(&o, "unrecognized subcommand 'frobnicate'");
}

#[test]
fn validate_of_a_missing_path_is_a_usage_error() {
    let o = podid(["validate", "/no/such/path"]);
    assert_usage_failure(&o, "/no/such/path");
    assert!(
        stderr(&o).contains("no such file or directory"),
        "{}",
        describe(&o)
    );
}

#[test]
fn run_with_a_missing_scenarios_path_fails_before_starting_anything() {
    let out = std::env::temp_dir().join(format!("podid-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = podid([
        Path::new("run"),
        Path::new("--scenarios"),
        Path::new("/no/such/path"),
        Path::new("--out"),
        &out,
    ]);
    assert_usage_failure(&o, "/no/such/path");
    assert!(
        stderr(&o).contains("no such file or directory"),
        "{}",
        describe(&o)
    );
    assert!(
        !stderr(&o).contains("starting"),
        "nothing may be started:\n{}",
        describe(&o)
    );
    assert!(
        !out.exists(),
        "no output directory may be created: {}",
        out.display()
    );
}

#[test]
fn run_with_an_invalid_scenario_fails_before_starting_anything() {
    let out = std::env::temp_dir().join(format!("podid-cli-test-invalid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let bad = invalid_dir().join("undefined-pod.yaml");
    let o = podid([
        Path::new("run"),
        Path::new("--scenarios"),
        &bad,
        Path::new("--out"),
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(!positions(&stderr(&o), &bad).is_empty(), "{}", describe(&o));
    assert!(
        !stderr(&o).contains("starting"),
        "nothing may be started:\n{}",
        describe(&o)
    );
    assert!(!out.exists(), "no output directory may be created");
}

#[test]
fn help_is_available() {
    let o = podid(["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let out = stdout(&o);
    for sub in [
        "run",
        "validate",
        "schema",
        "list",
        "toolchain",
        "clean",
        "mock",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
            "`podid --help` does not list `{sub}`:\n{out}"
        );
    }

    let o = podid(["run", "--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let out = stdout(&o);
    assert!(out.contains("Usage: podid run"), "{out}");
    for flag in ["--scenarios", "--tag", "--mode", "--out", "--jobs"] {
        assert!(
            out.contains(flag),
            "`podid run --help` lacks {flag}:\n{out}"
        );
    }
}

#[test]
fn an_unknown_provider_is_one_line_and_exit_2_from_the_flag_or_the_environment() {
    for (args, env) in [
        (vec!["run", "--provider", "nope"], None),
        (vec!["run"], Some("nope")),
        (vec!["list", "--provider", "nope"], None),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_podid"));
        command.args(&args).current_dir(repo_root());
        match env {
            Some(value) => command.env("PODID_PROVIDER", value),
            None => command.env_remove("PODID_PROVIDER"),
        };
        let o = command.output().expect("podid starts");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", describe(&o));
        assert_eq!(
            stderr(&o),
            "podid: unknown provider `nope`; valid providers: local, kind, existing\n",
            "{args:?}"
        );
    }
}

#[test]
fn list_with_a_provider_plans_every_trial_and_skips_only_with_a_reason() {
    let files = podid_scenario::discover(&[scenarios_dir()]).expect("scenarios");
    let (loaded, invalid) = podid_scenario::load_all(&files);
    assert!(invalid.is_empty());
    let expected: usize = loaded.iter().map(|f| f.scenario.modes.len()).sum();
    // kind has no restarts of its components mid-scenario, no pods held in Pending, no SDK
    // clients in its workload image and no forged pod addresses; local runs everything.
    let kind_lacks = [
        "component restarts mid-scenario",
        "pods that stay in phase Pending",
        "the Python SDK client inside pods",
        "the JavaScript SDK client inside pods",
        "the Azure CLI inside pods",
        "commands run inside pods",
        "pod objects reporting another pod's address",
        "requests sent from another pod's address",
    ];
    for provider in ["local", "kind"] {
        let o = podid(["list", "--provider", provider]);
        assert!(o.status.success(), "{}", describe(&o));
        let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
        assert_eq!(lines.len(), expected, "{}", describe(&o));
        let mut runnable = 0;
        for line in &lines {
            if line.starts_with(&format!("run   {provider}::")) {
                runnable += 1;
                continue;
            }
            assert!(
                provider == "kind"
                    && line.starts_with("skip  kind::")
                    && kind_lacks.iter().any(|why| line.contains(why)),
                "{provider} must run this trial or say which capability it lacks: {line}"
            );
        }
        if provider == "local" {
            assert_eq!(runnable, expected, "{}", describe(&o));
        }
        assert!(
            stderr(&o).contains(&format!(
                "{runnable} of {expected} trial(s) would run on `{provider}`"
            )),
            "{}",
            describe(&o)
        );
    }
}

/// What `existing` runs and skips, with each reason, for both of its clouds: the plan a
/// platform team reads before pointing podid at a real cluster.
#[test]
fn the_existing_providers_plan_says_why_each_skipped_trial_is_skipped() {
    for cloud in ["mock", "azure"] {
        let o = podid(["list", "--provider", "existing", "--cloud", cloud]);
        assert!(o.status.success(), "{}", describe(&o));
        insta::assert_snapshot!(format!("existing_plan_{cloud}"), stdout(&o));
        let summary = stderr(&o);
        assert!(
            summary.contains("trial(s) would run on `existing`"),
            "{summary}"
        );
    }
    // A real cloud keeps no request log and takes no faults: fewer trials run than on the mock.
    let runnable = |cloud: &str| {
        stdout(&podid(["list", "--provider", "existing", "--cloud", cloud]))
            .lines()
            .filter(|l| l.starts_with("run "))
            .count()
    };
    assert!(runnable("azure") < runnable("mock"));
}

/// `podid run --provider existing` against a cluster it cannot use stops before anything else
/// with one line saying why (after the line naming the provider), and exit 2.
fn assert_existing_refused(case: &str, args: &[&str], kubeconfig: Option<&str>, reason: &str) {
    let dir = std::env::temp_dir().join(format!("podid-cli-{case}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut all = vec![
        "run",
        "--provider",
        "existing",
        "--out",
        dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let path = dir.join("kubeconfig");
    if let Some(text) = kubeconfig {
        std::fs::write(&path, text).unwrap();
        all.extend(["--kubeconfig", path.to_str().unwrap()]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_podid"))
        .args(&all)
        .current_dir(repo_root())
        .env_remove("PODID_WORKLOAD_IMAGE")
        .env_remove("PODID_CLOUD")
        .env_remove("KUBECONFIG")
        .output()
        .expect("podid starts");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "one line of reason expected:\n{}",
        describe(&o)
    );
    assert!(
        lines[1].starts_with("podid: ") && lines[1].contains(reason),
        "expected `{reason}`:\n{}",
        describe(&o)
    );
}

#[test]
fn existing_without_a_workload_image_says_so() {
    assert_existing_refused(
        "no-image",
        &[],
        None,
        "needs the image its pods run: give --workload-image",
    );
}

#[test]
fn existing_with_an_empty_kubeconfig_says_so() {
    assert_existing_refused(
        "empty",
        &["--workload-image", "img"],
        Some(""),
        "kubeconfig",
    );
}

#[test]
fn existing_with_an_unreachable_api_server_says_so() {
    // A port nothing listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user:\n    token: t\n"
    );
    assert_existing_refused(
        "unreachable",
        &["--workload-image", "img"],
        Some(&kubeconfig),
        &format!("127.0.0.1:{port}"),
    );
}

#[test]
fn exec_without_a_running_up_says_so_in_one_line() {
    let out = std::env::temp_dir().join(format!("podid-cli-exec-{}", std::process::id()));
    let o = podid([
        "exec".as_ref(),
        "app".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--".as_ref(),
        "true".as_ref(),
    ]);
    assert_usage_failure(&o, "no running `podid up` described in");
}

#[test]
fn up_of_an_unknown_scenario_is_a_usage_error() {
    let o = podid(["up", "no-such-scenario"]);
    assert_usage_failure(&o, "no scenario `no-such-scenario`");
}
