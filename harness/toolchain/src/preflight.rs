//! Checking, before a long build starts, that it can succeed: Go present and new enough, proxy
//! reachable and serving every pinned module. Problems are collected into one error.

use std::path::Path;
use std::process::Stdio;

use crate::component::{Artifact, Component};
use crate::error::ToolchainError;
use crate::go_tool::{GOPROXY_VAR, GoCaches, GoTool, GoVersion};

/// Verifies that `components` can be built with `go`; returns the usable Go tool.
pub(crate) fn preflight<'a>(
    go: &'a Result<GoTool, String>,
    components: &[Component],
    caches: &GoCaches,
    work_dir: &Path,
) -> Result<&'a GoTool, ToolchainError> {
    let mut problems = Vec::new();
    match go {
        Err(reason) => problems.push(reason.clone()),
        Ok(go) => {
            problems.extend(version_problems(go, components));
            match &go.proxy {
                Err(reason) => problems.push(reason.clone()),
                Ok(proxy) if problems.is_empty() => {
                    problems.extend(proxy_problem(go, proxy, components, caches, work_dir))
                }
                Ok(_) => {}
            }
        }
    }
    match go {
        Ok(go) if problems.is_empty() => Ok(go),
        _ => Err(ToolchainError::Preflight {
            components: components
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            problems,
            hint: hint(components),
        }),
    }
}

/// The oldest Go that builds all of `components`.
pub(crate) fn required_go(components: &[Component]) -> Option<GoVersion> {
    components
        .iter()
        .filter_map(|c| c.wrapper().required_go().and_then(GoVersion::parse))
        .max()
}

fn version_problems(go: &GoTool, components: &[Component]) -> Vec<String> {
    let Some(have) = go.release() else {
        return vec![format!(
            "cannot tell the version of {} (GOVERSION={:?})",
            go.binary.display(),
            go.version
        )];
    };
    components
        .iter()
        .filter_map(|c| {
            let need = c.wrapper().required_go()?;
            let need_version = GoVersion::parse(need)?;
            (have < need_version).then(|| {
                format!(
                    "{} ({}) is older than go {need}, which {c} needs",
                    go.binary.display(),
                    go.version
                )
            })
        })
        .collect()
}

/// Asks the proxy for every pinned module in one `go list -m` call.
fn proxy_problem(
    go: &GoTool,
    proxy: &str,
    components: &[Component],
    caches: &GoCaches,
    work_dir: &Path,
) -> Option<String> {
    let mut modules: Vec<String> = components
        .iter()
        .map(|c| format!("{}@{}", c.module(), c.version()))
        .collect();
    modules.dedup();
    let mut cmd = go.command(work_dir, caches);
    cmd.args(["list", "-m", "-json"]).args(&modules);
    let output = match cmd.stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(e) => {
            return Some(format!(
                "running `{} list` failed: {e}",
                go.binary.display()
            ));
        }
    };
    if output.status.success() {
        return None;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let detail: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(6)
        .collect();
    Some(format!(
        "the module proxy {proxy} did not serve {}: {}",
        modules.join(" "),
        detail.join(" | ")
    ))
}

fn hint(components: &[Component]) -> String {
    let go = required_go(components)
        .map(|v| format!("Go >= {v}"))
        .unwrap_or_else(|| "Go".to_string());
    let mut hint = format!(
        "Fix: install {go} with a reachable Go module proxy (GOPROXY, or {GOPROXY_VAR} to override it)"
    );
    let overridable: Vec<String> = components
        .iter()
        .flat_map(|c| c.artifacts())
        .filter_map(|a: &Artifact| a.override_var().map(|var| format!("{var}=/path/to/{a}")))
        .collect();
    if !overridable.is_empty() {
        hint.push_str(&format!(
            ", or use prebuilt binaries instead of building: {}",
            overridable.join(" ")
        ));
    }
    if components.contains(&Component::AadPodIdentityCrds) {
        hint.push_str(
            ". The aad-pod-identity CRD manifest is always fetched through the module proxy.",
        );
    }
    if components.iter().any(|c| {
        matches!(
            c,
            Component::KindSource | Component::KubernetesSource | Component::AadPodIdentitySource
        )
    }) {
        hint.push_str(
            ". kind's node files, pause.c and aad-pod-identity's manifests are read from module \
             sources, which are always fetched through the module proxy.",
        );
    }
    hint
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn caches(dir: &Path) -> GoCaches {
        GoCaches {
            module_cache: dir.join("gomod"),
            build_cache: dir.join("gobuild"),
        }
    }

    fn fake_go(version: &str, proxy: Result<String, String>) -> GoTool {
        GoTool {
            binary: PathBuf::from("/usr/local/go/bin/go"),
            version: version.into(),
            goos: "linux".into(),
            goarch: "amd64".into(),
            proxy,
        }
    }

    #[test]
    fn missing_go_gives_one_error_naming_the_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let go = Err("`go` was not found on PATH".to_string());
        let err = preflight(
            &go,
            &[
                Component::Etcd,
                Component::AadPodIdentity,
                Component::AadPodIdentityCrds,
            ],
            &caches(dir.path()),
            dir.path(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cannot build etcd v3.6.13, aad-pod-identity v1.8.17"),
            "{text}"
        );
        assert!(text.contains("  - `go` was not found on PATH"), "{text}");
        assert!(text.contains("Go >= 1.25.0"), "{text}");
        assert!(text.contains("PODID_ETCD=/path/to/etcd"), "{text}");
        assert!(
            text.contains("PODID_NMI=/path/to/nmi PODID_MIC=/path/to/mic"),
            "{text}"
        );
        assert!(!text.contains("PODID_KUBE_APISERVER"), "{text}");
        assert!(text.contains("CRD manifest is always fetched"), "{text}");
    }

    #[test]
    fn old_go_and_missing_proxy_are_both_reported() {
        let dir = tempfile::tempdir().unwrap();
        let go = Ok(fake_go(
            "go1.25.3",
            Err("GOPROXY=direct names no module proxy".to_string()),
        ));
        let err = preflight(
            &go,
            &[Component::KubeApiserver, Component::Etcd],
            &caches(dir.path()),
            dir.path(),
        )
        .unwrap_err();
        let ToolchainError::Preflight { problems, .. } = &err else {
            panic!("unexpected error {err}");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0]
                .contains("go1.25.3) is older than go 1.26.0, which kube-apiserver v1.36.3 needs")
        );
        assert!(problems[1].contains("GOPROXY=direct"));
        assert!(err.to_string().contains("Go >= 1.26.0"));
    }

    #[test]
    fn required_go_is_the_newest_directive() {
        assert_eq!(
            required_go(&[Component::AadPodIdentity, Component::KubeApiserver]),
            Some(GoVersion(1, 26, 0))
        );
        assert_eq!(
            required_go(&[Component::AadPodIdentity]),
            Some(GoVersion(1, 18, 0))
        );
    }
}
