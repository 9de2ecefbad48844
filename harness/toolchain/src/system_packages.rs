//! The host tools the harness needs besides the toolchain (iptables, ip), installed when possible.

use std::ffi::OsString;
use std::process::Command;
use std::sync::Mutex;

use crate::error::ToolchainError;
use crate::go_tool::find_executable;
use crate::observer::{BuildEvent, BuildObserver};
use crate::process::run_streamed;

/// A command the harness runs and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostTool {
    /// Executable name.
    pub command: &'static str,
    /// Debian/Ubuntu package.
    pub package: &'static str,
}

/// Host tools podid needs: NMI programs iptables; network namespaces are wired with `ip`.
pub(crate) const HOST_TOOLS: [HostTool; 2] = [
    HostTool {
        command: "iptables",
        package: "iptables",
    },
    HostTool {
        command: "ip",
        package: "iproute2",
    },
];

/// Directories searched in addition to PATH, since sbin is often missing from a user's PATH.
const SYSTEM_DIRS: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to do about missing packages.
#[derive(Debug)]
pub(crate) enum InstallPlan {
    /// Everything is present.
    Nothing,
    /// Install these packages with apt-get.
    AptInstall(Vec<String>),
    /// Cannot install; the error says why and what to install.
    Impossible(ToolchainError),
}

/// The host tools not found on `path_var` or the system directories.
pub(crate) fn missing_tools(path_var: Option<OsString>) -> Vec<HostTool> {
    let mut search = path_var.unwrap_or_default();
    search.push(":");
    search.push(SYSTEM_DIRS);
    HOST_TOOLS
        .into_iter()
        .filter(|tool| find_executable(&search, tool.command).is_none())
        .collect()
}

/// Decides how to get `missing` installed given who we are and whether apt-get exists.
pub(crate) fn plan(missing: &[HostTool], is_root: bool, has_apt: bool) -> InstallPlan {
    if missing.is_empty() {
        return InstallPlan::Nothing;
    }
    let packages: Vec<String> = missing.iter().map(|t| t.package.to_string()).collect();
    let reason = match (is_root, has_apt) {
        (true, true) => return InstallPlan::AptInstall(packages),
        (false, true) => format!(
            "podid installs them itself only when run as root; run `sudo apt-get install -y {}`",
            packages.join(" ")
        ),
        (_, false) => format!(
            "apt-get was not found, so podid cannot install them; install the packages providing {} \
             with this system's package manager",
            missing
                .iter()
                .map(|t| format!("`{}`", t.command))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    InstallPlan::Impossible(ToolchainError::SystemPackages { packages, reason })
}

/// Makes sure `iptables` and `ip` exist, installing them with apt-get when running as root.
pub fn ensure_system_packages(observer: &dyn BuildObserver) -> Result<(), ToolchainError> {
    let path_var = std::env::var_os("PATH");
    let missing = missing_tools(path_var.clone());
    let mut search = path_var.clone().unwrap_or_default();
    search.push(":");
    search.push(SYSTEM_DIRS);
    let apt = find_executable(&search, "apt-get");
    let is_root = nix::unistd::geteuid().is_root();
    let packages = match plan(&missing, is_root, apt.is_some()) {
        InstallPlan::Nothing => return Ok(()),
        InstallPlan::Impossible(err) => return Err(err),
        InstallPlan::AptInstall(packages) => packages,
    };
    let apt = apt.expect("plan only installs when apt-get exists");
    observer.event(BuildEvent::InstallingPackages {
        packages: packages.clone(),
    });
    let log = Mutex::new(null_sink()?);
    let run_apt = |args: &[&str]| -> Result<bool, ToolchainError> {
        let mut cmd = Command::new(&apt);
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        let (status, _) = run_streamed(cmd, &log, &|line| {
            observer.event(BuildEvent::InstallOutput { line })
        })
        .map_err(ToolchainError::io("running", &apt))?;
        Ok(status.success())
    };
    let mut install_args = vec!["install", "-y", "--no-install-recommends"];
    install_args.extend(packages.iter().map(String::as_str));
    // A fresh container has no package lists: update once and retry.
    if !run_apt(&install_args)? && (!run_apt(&["update"])? || !run_apt(&install_args)?) {
        return Err(ToolchainError::SystemPackages {
            packages,
            reason: "`apt-get install` failed even after `apt-get update`; see its output above"
                .to_string(),
        });
    }
    let still_missing = missing_tools(path_var);
    if !still_missing.is_empty() {
        return Err(ToolchainError::SystemPackages {
            packages: still_missing
                .iter()
                .map(|t| t.package.to_string())
                .collect(),
            reason: "apt-get succeeded but the commands are still not on PATH".to_string(),
        });
    }
    Ok(())
}

/// apt-get output goes to the observer; this sink only satisfies the streaming runner.
fn null_sink() -> Result<std::fs::File, ToolchainError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(ToolchainError::io("opening", "/dev/null"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn nothing_to_do_when_everything_is_present() {
        assert!(matches!(plan(&[], false, false), InstallPlan::Nothing));
    }

    #[test]
    fn root_with_apt_installs_the_packages() {
        let InstallPlan::AptInstall(packages) = plan(&HOST_TOOLS, true, true) else {
            panic!("expected an install");
        };
        assert_eq!(packages, ["iptables", "iproute2"]);
    }

    #[test]
    fn non_root_gets_the_command_to_run() {
        let InstallPlan::Impossible(err) = plan(&HOST_TOOLS[..1], false, true) else {
            panic!("expected an error");
        };
        let text = err.to_string();
        assert!(
            text.starts_with("missing system packages iptables:"),
            "{text}"
        );
        assert!(text.contains("sudo apt-get install -y iptables"), "{text}");
    }

    #[test]
    fn no_apt_names_the_commands() {
        let InstallPlan::Impossible(err) = plan(&HOST_TOOLS, true, false) else {
            panic!("expected an error");
        };
        let text = err.to_string();
        assert!(text.contains("`iptables` and `ip`"), "{text}");
    }

    #[test]
    fn tools_on_path_are_found() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["iptables", "ip"] {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(missing_tools(Some(dir.path().as_os_str().to_owned())), []);
    }
}
