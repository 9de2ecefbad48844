//! `clean_leftovers` against real processes and namespaces. Needs root: without it the test is
//! reported as ignored, with the reason printed.

use std::path::Path;

use podid_local::clean_leftovers;
use podid_netns::{NetNamespace, namespace_name};

/// Writes a state file by hand, as a crashed run would have left it.
fn write_state(
    run: &str,
    owner_pid: u32,
    owner_start: u64,
    sleeper: u32,
    sleeper_start: u64,
    ns: &str,
) {
    std::fs::create_dir_all("/run/podid").unwrap();
    let state = serde_json::json!({
        "run_id": run,
        "owner": {"name": "podid", "pid": owner_pid, "start_time": owner_start},
        "processes": [{"name": "sleep", "pid": sleeper, "start_time": sleeper_start}],
        "namespaces": [{"name": ns, "kind": "node"}],
    });
    std::fs::write(format!("/run/podid/{run}.json"), state.to_string()).unwrap();
}

fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    after.split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!(
            "not root: the clean test (real processes and network namespaces) is ignored on this machine"
        );
    }
    let trial = libtest_mimic::Trial::test("dead_runs_are_cleaned_and_live_runs_spared", || {
        dead_runs_are_cleaned_and_live_runs_spared();
        Ok(())
    })
    .with_ignored_flag(!root);
    libtest_mimic::run(&args, vec![trial]).exit_code()
}

fn dead_runs_are_cleaned_and_live_runs_spared() {
    let suffix = format!("{:04}", std::process::id() % 10_000);
    let (dead_run, live_run) = (format!("zd{suffix}"), format!("zl{suffix}"));

    // A dead owner: a child that has exited (and been reaped).
    let mut owner = std::process::Command::new("true").spawn().unwrap();
    let owner_pid = owner.id();
    owner.wait().unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let dead_ns = namespace_name(&dead_run, "node-1");
    NetNamespace::create(&dead_ns).unwrap();
    write_state(
        &dead_run,
        owner_pid,
        1,
        sleeper.id(),
        start_time(sleeper.id()),
        &dead_ns,
    );

    // A live owner: this test process.
    let me = std::process::id();
    let live_ns = namespace_name(&live_run, "node-1");
    NetNamespace::create(&live_ns).unwrap();
    write_state(&live_run, me, start_time(me), me, start_time(me), &live_ns);

    let report = clean_leftovers().unwrap();
    let sleeper_status = sleeper.wait().unwrap();
    let live_still_there = NetNamespace::exists(&live_ns);
    let _ = NetNamespace::delete_by_name(&live_ns);
    let _ = std::fs::remove_file(format!("/run/podid/{live_run}.json"));

    assert!(report.dead_runs.contains(&dead_run), "{report:?}");
    assert!(report.live_runs.contains(&live_run), "{report:?}");
    assert!(!sleeper_status.success(), "the recorded process was killed");
    assert!(!NetNamespace::exists(&dead_ns));
    assert!(report.namespaces.contains(&dead_ns));
    assert!(live_still_there, "a live run's namespace is spared");
    assert!(!Path::new(&format!("/run/podid/{dead_run}.json")).exists());
}
