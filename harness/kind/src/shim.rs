//! A `docker` wrapper for hosts that refuse `--privileged`.
//!
//! kind always starts its node containers with `--privileged` and has no option for other
//! flags. Where the Docker daemon lacks a capability that `--privileged` would grant (runc then
//! fails with "unable to apply caps: operation not permitted"), kind is run with this wrapper
//! first in PATH: on `run`/`create` it replaces `--privileged` by flags granting everything the
//! daemon can grant, and on `exec` it drops the flag (an exec'd process already gets the
//! container's capabilities). Every other invocation passes through unchanged. The wrapper is
//! only used when [`Docker::privileged_mode`](crate::docker::Docker::privileged_mode) found it
//! necessary; on ordinary hosts kind talks to docker directly.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{KindError, Result};

/// What replaces `--privileged` on `docker run`: every capability except `SYS_RESOURCE` (the
/// one the daemon cannot grant), no masked or read-only /proc and /sys paths, no SELinux label,
/// access to every device node and the kernel log (systemd and the kubelet read `/dev/kmsg`).
pub const PRIVILEGED_REPLACEMENT: &[&str] = &[
    "--cap-add=ALL",
    "--cap-drop=SYS_RESOURCE",
    "--security-opt=systempaths=unconfined",
    "--security-opt=label=disable",
    "--device-cgroup-rule=a *:* rwm",
    "--device=/dev/kmsg",
];

/// A directory holding the `docker` wrapper, to be put first in kind's PATH.
#[derive(Debug, Clone)]
pub struct DockerShim {
    dir: PathBuf,
    real: PathBuf,
}

impl DockerShim {
    /// Writes the wrapper as `dir/docker`, forwarding to the real CLI at `real_docker` (an
    /// absolute path, so the wrapper never finds itself).
    pub fn write(dir: &Path, real_docker: &Path) -> Result<Self> {
        if !real_docker.is_absolute() {
            return Err(KindError::invalid(
                "writing the docker shim",
                format!(
                    "the real docker CLI must be an absolute path, not {}",
                    real_docker.display()
                ),
            ));
        }
        std::fs::create_dir_all(dir).map_err(KindError::io("creating the shim directory", dir))?;
        let path = dir.join("docker");
        // Unique per process: two runs may write the shim at once; the rename is atomic.
        let tmp = dir.join(format!(".docker.{}.tmp", std::process::id()));
        std::fs::write(&tmp, script(real_docker)).map_err(KindError::io("writing", &tmp))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                .map_err(KindError::io("making executable", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(KindError::io("installing", &path))?;
        Ok(Self {
            dir: dir.to_owned(),
            real: real_docker.to_owned(),
        })
    }

    /// The directory to put first in PATH.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The real docker CLI the wrapper forwards to.
    pub fn real_docker(&self) -> &Path {
        &self.real
    }

    /// PATH with the wrapper's directory first (from the current process's PATH).
    pub fn path_env(&self) -> OsString {
        let current = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(self.dir.clone()).chain(std::env::split_paths(&current));
        std::env::join_paths(dirs).unwrap_or(current)
    }
}

/// The wrapper script forwarding to `real_docker`.
pub fn script(real_docker: &Path) -> String {
    let replacement = PRIVILEGED_REPLACEMENT
        .iter()
        .map(|f| shell_quote(f))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        r#"#!/bin/bash
# docker wrapper written by podid: this host refuses `docker run --privileged`, so the flag is
# replaced on run/create by the grants the daemon can give, and dropped on exec.
real={real}
mode=
case "${{1:-}}" in
  run|create) mode=run ;;
  exec) mode=exec ;;
  container)
    case "${{2:-}}" in
      run|create) mode=run ;;
      exec) mode=exec ;;
    esac ;;
esac
if [ -z "$mode" ]; then
  exec "$real" "$@"
fi
args=()
for arg in "$@"; do
  case "$arg" in
    --privileged|--privileged=true)
      if [ "$mode" = run ]; then
        args+=({replacement})
      fi ;;
    *) args+=("$arg") ;;
  esac
done
exec "$real" "${{args[@]}}"
"#,
        real = shell_quote(&real_docker.to_string_lossy()),
    )
}

/// Single-quotes a string for bash.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a fake "real docker" that prints each argument on its own line, and the shim in
    /// front of it; returns what the fake saw for `args`.
    fn through_shim(args: &[&str]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("real docker");
        std::fs::write(&fake, "#!/bin/bash\nprintf '%s\\n' \"$@\"\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let shim = DockerShim::write(&dir.path().join("shim"), &fake).unwrap();
        let out = std::process::Command::new(shim.dir().join("docker"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn run_replaces_privileged_with_the_grants() {
        let seen = through_shim(&["run", "--detach", "--privileged", "--name", "n", "img"]);
        let mut expected = vec!["run", "--detach"];
        expected.extend(PRIVILEGED_REPLACEMENT);
        expected.extend(["--name", "n", "img"]);
        assert_eq!(seen, expected);
        assert!(seen.contains(&"--device-cgroup-rule=a *:* rwm".to_owned()));
    }

    #[test]
    fn container_create_is_rewritten_too() {
        let seen = through_shim(&["container", "create", "--privileged=true", "img"]);
        assert_eq!(seen[..2], ["container", "create"]);
        assert!(seen.iter().any(|a| a == "--cap-add=ALL"));
        assert!(!seen.iter().any(|a| a.starts_with("--privileged")));
    }

    #[test]
    fn exec_drops_privileged() {
        let seen = through_shim(&["exec", "--privileged", "-i", "node", "ctr", "images"]);
        assert_eq!(seen, ["exec", "-i", "node", "ctr", "images"]);
    }

    #[test]
    fn other_commands_pass_through_untouched() {
        let seen = through_shim(&["inspect", "--privileged", "it's quoted", ""]);
        assert_eq!(seen, ["inspect", "--privileged", "it's quoted", ""]);
    }

    #[test]
    fn relative_real_docker_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DockerShim::write(dir.path(), Path::new("docker")).is_err());
    }
}
