//! Finding the `go` command and running it with podid's pinned, hermetic build environment.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable that overrides the module proxy podid builds from.
pub const GOPROXY_VAR: &str = "PODID_GOPROXY";

/// Where to look for Go and which proxy to prefer; taken from the process, or set by tests.
#[derive(Debug, Clone, Default)]
pub(crate) struct BuildEnvironment {
    /// The `PATH` searched for `go`.
    pub path_var: Option<OsString>,
    /// `PODID_GOPROXY`, which wins over `go env GOPROXY`.
    pub proxy_override: Option<String>,
}

impl BuildEnvironment {
    /// Reads `PATH` and `PODID_GOPROXY` from the current process.
    pub fn from_process() -> Self {
        BuildEnvironment {
            path_var: std::env::var_os("PATH"),
            proxy_override: std::env::var(GOPROXY_VAR).ok().filter(|v| !v.is_empty()),
        }
    }
}

/// A Go release number such as 1.26.8, comparable with a go.mod `go` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GoVersion(pub u64, pub u64, pub u64);

impl GoVersion {
    /// Parses `go1.26.8`, `1.26.0`, `1.18`, `go1.27rc1` or `devel go1.27-abc`.
    pub fn parse(text: &str) -> Option<GoVersion> {
        let text = text.trim();
        let text = text.rsplit(' ').next().unwrap_or(text);
        let text = text.strip_prefix("go").unwrap_or(text);
        let mut numbers = text.split('.').map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        });
        let major = numbers.next()??;
        let minor = numbers.next().flatten().unwrap_or(0);
        let patch = numbers.next().flatten().unwrap_or(0);
        Some(GoVersion(major, minor, patch))
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A working `go` command and what it reports about itself.
#[derive(Debug, Clone)]
pub(crate) struct GoTool {
    /// Absolute path of the `go` binary.
    pub binary: PathBuf,
    /// `go env GOVERSION`, e.g. `go1.26.8`.
    pub version: String,
    /// `go env GOOS`.
    pub goos: String,
    /// `go env GOARCH`.
    pub goarch: String,
    /// The proxy list podid builds with (never `direct`), or why there is none.
    pub proxy: Result<String, String>,
}

/// The directories the Go build caches live in, inside podid's cache.
#[derive(Debug, Clone)]
pub(crate) struct GoCaches {
    /// `GOMODCACHE`.
    pub module_cache: PathBuf,
    /// `GOCACHE`.
    pub build_cache: PathBuf,
}

impl GoTool {
    /// Finds `go` on the given PATH and asks it for its version, platform and proxy.
    pub fn probe(env: &BuildEnvironment) -> Result<GoTool, String> {
        let path_var = env.path_var.clone().unwrap_or_default();
        let binary = find_executable(&path_var, "go")
            .ok_or_else(|| "`go` was not found on PATH".to_string())?;
        let output = Command::new(&binary)
            .args(["env", "-json", "GOVERSION", "GOOS", "GOARCH", "GOPROXY"])
            .output()
            .map_err(|e| format!("running `{} env` failed: {e}", binary.display()))?;
        if !output.status.success() {
            return Err(format!(
                "`{} env` failed ({}): {}",
                binary.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let vars: std::collections::HashMap<String, String> =
            serde_json::from_slice(&output.stdout).map_err(|e| {
                format!(
                    "`{} env -json` printed unreadable output: {e}",
                    binary.display()
                )
            })?;
        let get = |name: &str| vars.get(name).cloned().unwrap_or_default();
        let proxy = match &env.proxy_override {
            Some(explicit) => usable_proxy(explicit).ok_or_else(|| {
                format!("{GOPROXY_VAR}={explicit} names no module proxy (only direct/off)")
            }),
            None => {
                let configured = get("GOPROXY");
                usable_proxy(&configured).ok_or_else(|| {
                    format!(
                        "GOPROXY={configured} names no module proxy; podid never fetches modules directly \
                         from version control (set GOPROXY or {GOPROXY_VAR} to a module proxy URL)"
                    )
                })
            }
        };
        Ok(GoTool {
            binary,
            version: get("GOVERSION"),
            goos: get("GOOS"),
            goarch: get("GOARCH"),
            proxy,
        })
    }

    /// The parsed Go release, if `GOVERSION` is readable.
    pub fn release(&self) -> Option<GoVersion> {
        GoVersion::parse(&self.version)
    }

    /// A `go` command in `dir` with the pinned environment: our proxy, no VCS, no cgo, our caches.
    pub fn command(&self, dir: &Path, caches: &GoCaches) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.current_dir(dir)
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-buildvcs=false -modcacherw")
            .env("GO111MODULE", "on")
            .env("GOWORK", "off")
            .env("GOMODCACHE", &caches.module_cache)
            .env("GOCACHE", &caches.build_cache);
        if let Ok(proxy) = &self.proxy {
            cmd.env("GOPROXY", proxy);
        }
        cmd
    }
}

/// Drops `direct` and `off` from a GOPROXY list; `None` when no proxy remains.
pub(crate) fn usable_proxy(list: &str) -> Option<String> {
    // Entries are separated by ',' (fall through on 404/410) or '|' (fall through on any error);
    // keep each kept entry's preceding separator.
    let mut kept = String::new();
    let mut separator = None;
    let mut entry = String::new();
    let flush = |entry: &str, separator: Option<char>, kept: &mut String| {
        let entry = entry.trim();
        if entry.is_empty() || entry == "direct" || entry == "off" {
            return;
        }
        if !kept.is_empty() {
            kept.push(separator.unwrap_or(','));
        }
        kept.push_str(entry);
    };
    for c in list.chars() {
        if c == ',' || c == '|' {
            flush(&entry, separator, &mut kept);
            entry.clear();
            separator = Some(c);
        } else {
            entry.push(c);
        }
    }
    flush(&entry, separator, &mut kept);
    (!kept.is_empty()).then_some(kept)
}

/// Searches a PATH-style list for an executable file called `name`.
pub(crate) fn find_executable(path_var: &OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// True for a regular file (after symlinks) with an execute bit set.
pub(crate) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_and_off_are_dropped_from_the_proxy_list() {
        assert_eq!(
            usable_proxy("https://proxy.golang.org,direct").as_deref(),
            Some("https://proxy.golang.org")
        );
        assert_eq!(
            usable_proxy("https://a.example|https://b.example,direct").as_deref(),
            Some("https://a.example|https://b.example")
        );
        assert_eq!(usable_proxy("direct"), None);
        assert_eq!(usable_proxy("off"), None);
        assert_eq!(usable_proxy(""), None);
    }

    #[test]
    fn go_versions_parse_and_compare() {
        assert_eq!(GoVersion::parse("go1.26.8"), Some(GoVersion(1, 26, 8)));
        assert_eq!(GoVersion::parse("1.18"), Some(GoVersion(1, 18, 0)));
        assert_eq!(GoVersion::parse("go1.27rc1"), Some(GoVersion(1, 27, 0)));
        assert_eq!(
            GoVersion::parse("devel go1.27-abcdef"),
            Some(GoVersion(1, 27, 0))
        );
        assert_eq!(GoVersion::parse("nonsense"), None);
        assert!(GoVersion(1, 26, 8) >= GoVersion::parse("1.26.0").unwrap());
        assert!(GoVersion(1, 25, 9) < GoVersion::parse("1.26.0").unwrap());
    }

    #[test]
    fn probe_without_go_on_path_says_so() {
        let empty = tempfile::tempdir().unwrap();
        let env = BuildEnvironment {
            path_var: Some(empty.path().as_os_str().to_owned()),
            proxy_override: None,
        };
        let err = GoTool::probe(&env).unwrap_err();
        assert_eq!(err, "`go` was not found on PATH");
    }

    #[test]
    fn non_executable_files_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("go"), "#!/bin/sh\n").unwrap();
        assert_eq!(find_executable(dir.path().as_os_str(), "go"), None);
        std::fs::set_permissions(
            dir.path().join("go"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(
            find_executable(dir.path().as_os_str(), "go"),
            Some(dir.path().join("go"))
        );
    }
}
