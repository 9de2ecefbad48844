//! `podid exec`: runs a command inside a pod of a running `podid up`, as its scenarios' `exec`
//! steps do: with the pod's network, host names and trust store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use podid_scenario::ClientKind;

use super::up::{UpState, state_file};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClientArg {
    Python,
    Javascript,
    Azcli,
}

impl ClientArg {
    fn kind(self) -> ClientKind {
        match self {
            Self::Python => ClientKind::Python,
            Self::Javascript => ClientKind::Javascript,
            Self::Azcli => ClientKind::Azcli,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pod, by the scenario's name for it (`podid up` lists them).
    pub pod: String,
    /// Run one of the project's SDK clients with the arguments after `--`.
    #[arg(long, value_enum)]
    pub client: Option<ClientArg>,
    /// Root of generated output of the `podid up` to use (default: target/podid).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The command (or the client's arguments), after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(args: ExecArgs) -> ExitCode {
    let out = args.out.clone().unwrap_or_else(|| {
        podid::session::default_output_dir(&std::env::current_dir().unwrap_or_default())
    });
    let file = state_file(&out);
    let state: UpState = match std::fs::read_to_string(&file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            return super::fail(format!(
                "no running `podid up` described in {} ({e}); start one first",
                file.display()
            ));
        }
    };
    if !process_alive(state.pid) {
        return super::fail(format!(
            "the `podid up` described in {} (pid {}) has ended, and its pods with it; start it again",
            file.display(),
            state.pid
        ));
    }
    let Some(pod) = state
        .pods
        .iter()
        .find(|p| p.name == args.pod || p.pod == args.pod)
    else {
        let names: Vec<&str> = state.pods.iter().map(|p| p.name.as_str()).collect();
        return super::fail(format!(
            "`{}` has no pod `{}` (it has: {})",
            state.scenario,
            args.pod,
            names.join(", ")
        ));
    };
    let Some(shell) = &pod.shell else {
        return super::fail(format!("pod `{}` cannot be entered from here", pod.name));
    };
    let mut argv = shell.prefix.clone();
    if let Some(client) = args.client {
        argv.extend(podid::clients::ClientPrograms::at(&state.clients_dir).argv(client.kind()));
    } else if args.command.first().is_some_and(|c| c == "podid-probe") {
        // The probe is this binary's `probe` subcommand.
        let podid = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("podid"));
        argv.extend([podid.display().to_string(), "probe".into()]);
        argv.extend(args.command.iter().skip(1).cloned());
        return spawn(&argv, &shell.env);
    }
    argv.extend(args.command.iter().cloned());
    spawn(&argv, &shell.env)
}

fn spawn(argv: &[String], env: &[(String, String)]) -> ExitCode {
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().cloned())
        .status();
    match status {
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| c.clamp(0, 255) as u8)),
        Err(e) => super::fail(format!("running `{}`: {e}", argv.join(" "))),
    }
}

/// Whether process `pid` still runs (a killed one that nobody reaped yet does not).
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}
