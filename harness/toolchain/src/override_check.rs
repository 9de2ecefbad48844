//! Validating user-supplied binaries: they are used as-is, so they must at least run.

use std::path::Path;
use std::time::Duration;

use crate::component::Artifact;
use crate::error::ToolchainError;
use crate::go_tool::is_executable;
use crate::process::run_probe;

/// How long `<binary> --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(15);

/// Why `path` cannot be executed at all, if it cannot (no process is started).
pub(crate) fn executable_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) => Some(format!("it does not exist or is unreadable ({e})")),
        Ok(m) if !m.is_file() => Some("it is not a regular file".to_string()),
        Ok(_) if !is_executable(path) => Some("it is not executable (chmod +x it)".to_string()),
        Ok(_) => None,
    }
}

/// Checks an override is an executable that answers `--version`; returns the first line printed.
pub(crate) fn check_override(artifact: Artifact, path: &Path) -> Result<String, ToolchainError> {
    let invalid = |reason: String| ToolchainError::InvalidOverride {
        var: artifact.override_var().unwrap_or("override"),
        path: path.to_path_buf(),
        artifact,
        reason,
    };
    if let Some(problem) = executable_problem(path) {
        return Err(invalid(problem));
    }
    let output = run_probe(
        path,
        &["--version"],
        artifact.version_probe_env(),
        VERSION_TIMEOUT,
    )
    .map_err(|e| invalid(format!("`--version`: {e}")))?;
    let first_line = output
        .text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    if !output.status.success() {
        return Err(invalid(format!(
            "`--version` exited with {}: {first_line}",
            output.status
        )));
    }
    Ok(first_line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn working_override_reports_its_version_line() {
        let dir = tempfile::tempdir().unwrap();
        let nmi = script(
            dir.path(),
            "nmi",
            "echo; echo 'patched nmi v9'; echo more",
            0o755,
        );
        assert_eq!(
            check_override(Artifact::Nmi, &nmi).unwrap(),
            "patched nmi v9"
        );
    }

    #[test]
    fn missing_and_non_executable_overrides_are_rejected_with_the_variable_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_override(Artifact::Etcd, &dir.path().join("nope")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("PODID_ETCD="), "{text}");
        assert!(text.contains("does not exist"), "{text}");

        let plain = script(dir.path(), "mic", "echo v1", 0o644);
        let text = check_override(Artifact::Mic, &plain)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("PODID_MIC=") && text.contains("not executable"),
            "{text}"
        );

        let text = check_override(Artifact::Nmi, dir.path())
            .unwrap_err()
            .to_string();
        assert!(text.contains("not a regular file"), "{text}");
    }

    #[test]
    fn mic_override_is_asked_for_its_version_with_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let mic = script(
            dir.path(),
            "mic",
            r#"[ -n "$MIC_POD_NAMESPACE" ] || { echo 'namespace not specified' >&2; exit 255; }
echo 'MIC Version: v1.8.17'"#,
            0o755,
        );
        assert_eq!(
            check_override(Artifact::Mic, &mic).unwrap(),
            "MIC Version: v1.8.17"
        );
    }

    #[test]
    fn override_failing_version_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let bad = script(
            dir.path(),
            "kube-apiserver",
            "echo 'unknown flag' >&2; exit 2",
            0o755,
        );
        let text = check_override(Artifact::KubeApiserver, &bad)
            .unwrap_err()
            .to_string();
        assert!(text.contains("PODID_KUBE_APISERVER="), "{text}");
        assert!(text.contains("unknown flag"), "{text}");
    }
}
