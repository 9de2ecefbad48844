//! Building one component into a staging directory, verifying it, and renaming it into the cache.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cache_layout::{CacheKey, CacheLayout};
use crate::component::{Artifact, Component, MODULE_LINK};
use crate::digest::sha256_file;
use crate::error::ToolchainError;
use crate::go_tool::GoTool;
use crate::manifest::{Manifest, ManifestArtifact};
use crate::observer::{BuildEvent, BuildObserver};
use crate::pins::CRD_MANIFEST_IN_MODULE;
use crate::process::{run_probe, run_streamed, tail};
use crate::recipe::{RecipeOutput, recipe};

/// Lines of the log shown in a build error.
const TAIL_LINES: usize = 30;

/// Builds `key.component` with `go` and installs it at `layout.entry_dir(key)`.
pub(crate) fn build_component(
    go: &GoTool,
    layout: &CacheLayout,
    key: &CacheKey,
    observer: &dyn BuildObserver,
) -> Result<PathBuf, ToolchainError> {
    let component = key.component;
    let started = Instant::now();
    observer.event(BuildEvent::Started {
        component,
        estimate: component.estimate(),
    });

    let staging = layout.staging_dir(component);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(ToolchainError::io(
            "removing stale build directory",
            &staging,
        ))?;
    }
    let src = staging.join("src");
    write_wrapper(component, &src)?;
    let bin = staging.join("bin");
    std::fs::create_dir_all(&bin).map_err(ToolchainError::io("creating", &bin))?;

    let log_path = layout.log_file(component);
    let log = open_log(&log_path)?;
    let failed = |reason: String| {
        if let Ok(mut file) = log.lock() {
            let _ = writeln!(file, "podid: {reason}");
        }
        ToolchainError::BuildFailed {
            component,
            reason,
            log: log_path.clone(),
            tail: tail(&log_path, TAIL_LINES),
        }
    };

    let recipe = recipe(component, &bin);
    let caches = layout.go_caches();
    let mut cmd = go.command(&src, &caches);
    cmd.args(&recipe.args);
    let mut command_line = vec![go.binary.display().to_string()];
    command_line.extend(recipe.args.iter().cloned());
    if let Ok(mut file) = log.lock() {
        let _ = writeln!(
            file,
            "podid: building {component} in {}\npodid: GOPROXY={} GOMODCACHE={} GOCACHE={}\npodid: $ {}",
            src.display(),
            go.proxy.as_deref().unwrap_or("(none)"),
            caches.module_cache.display(),
            caches.build_cache.display(),
            command_line.join(" ")
        );
    }
    let on_line = |line: String| observer.event(BuildEvent::Output { component, line });
    let (status, stdout) = run_streamed(cmd, &log, &on_line)
        .map_err(|e| failed(format!("cannot run {}: {e}", go.binary.display())))?;
    if !status.success() {
        return Err(failed(format!(
            "`go {}` exited with {status}",
            recipe.args[0]
        )));
    }

    match recipe.output {
        RecipeOutput::Binaries => {
            for artifact in component.artifacts() {
                verify_binary(&staging, *artifact, &log).map_err(&failed)?;
            }
        }
        RecipeOutput::ModuleDir => copy_crds(&stdout, &staging).map_err(&failed)?,
        RecipeOutput::ModuleLink => {
            link_module(&stdout, &staging, &layout.entry_dir(key), layout.root())
                .map_err(&failed)?;
            for artifact in component.artifacts() {
                let path = staging.join(artifact.relative_path());
                if !path.is_file() {
                    return Err(failed(format!(
                        "the module has no {} ({} is missing)",
                        artifact,
                        path.display()
                    )));
                }
            }
        }
    }

    let artifacts = component
        .artifacts()
        .iter()
        .map(|a| {
            let path = staging.join(a.relative_path());
            sha256_file(&path)
                .map(|sha256| ManifestArtifact {
                    path: a.relative_path().to_string(),
                    sha256,
                })
                .map_err(ToolchainError::io("hashing", &path))
        })
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::remove_dir_all(&src).map_err(ToolchainError::io("removing", &src))?;
    if component
        .artifacts()
        .iter()
        .all(|a| !a.relative_path().starts_with("bin/"))
    {
        let _ = std::fs::remove_dir(&bin);
    }
    let duration = started.elapsed();
    manifest_for(key, vec![command_line], artifacts, duration)
        .write(&staging)
        .map_err(ToolchainError::io("writing manifest in", &staging))?;

    let entry = layout.entry_dir(key);
    install(&staging, &entry)?;
    if let Ok(mut file) = log.lock() {
        let _ = writeln!(
            file,
            "podid: built {component} in {:.1}s into {}",
            duration.as_secs_f64(),
            entry.display()
        );
    }
    observer.event(BuildEvent::Finished {
        component,
        duration,
    });
    Ok(entry)
}

fn write_wrapper(component: Component, src: &Path) -> Result<(), ToolchainError> {
    std::fs::create_dir_all(src).map_err(ToolchainError::io("creating", src))?;
    let wrapper = component.wrapper();
    for (name, contents) in [
        ("go.mod", wrapper.go_mod),
        ("go.sum", wrapper.go_sum),
        ("tools.go", wrapper.tools_go),
    ] {
        let path = src.join(name);
        std::fs::write(&path, contents).map_err(ToolchainError::io("writing", &path))?;
    }
    Ok(())
}

fn open_log(path: &Path) -> Result<Mutex<File>, ToolchainError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(ToolchainError::io("creating log directory", dir))?;
    }
    File::create(path)
        .map(Mutex::new)
        .map_err(ToolchainError::io("creating build log", path))
}

/// Checks a freshly built binary exists and reports the pinned version.
fn verify_binary(staging: &Path, artifact: Artifact, log: &Mutex<File>) -> Result<(), String> {
    let path = staging.join(artifact.relative_path());
    if !path.is_file() {
        return Err(format!(
            "the build did not produce {}",
            artifact.relative_path()
        ));
    }
    let Some(expected) = artifact.expected_version_text() else {
        return Ok(());
    };
    let args = artifact.version_probe_args();
    let probe = format!("{artifact} {}", args.join(" "));
    let output = run_probe(
        &path,
        args,
        artifact.version_probe_env(),
        Duration::from_secs(30),
    )
    .map_err(|e| format!("{probe}: {e}"))?;
    if let Ok(mut file) = log.lock() {
        let _ = writeln!(file, "podid: $ {probe}\n{}", output.text.trim_end());
    }
    if !output.status.success() {
        return Err(format!(
            "{probe} exited with {}: {}",
            output.status,
            output.text.lines().next().unwrap_or("")
        ));
    }
    if !output.text.contains(&expected) {
        return Err(format!(
            "{probe} does not mention {expected:?}: {}",
            output.text.trim()
        ));
    }
    Ok(())
}

/// The module directory `go mod download -json` reported.
fn downloaded_module_dir(download_json: &str) -> Result<PathBuf, String> {
    #[derive(serde::Deserialize)]
    struct Download {
        #[serde(rename = "Dir")]
        dir: Option<PathBuf>,
        #[serde(rename = "Error")]
        error: Option<String>,
    }
    let download: Download = serde_json::from_str(download_json)
        .map_err(|e| format!("unreadable `go mod download -json` output: {e}"))?;
    if let Some(error) = download.error {
        return Err(format!("go mod download: {error}"));
    }
    download
        .dir
        .ok_or_else(|| "`go mod download -json` reported no module directory".to_string())
}

/// Links `staging/module` to the module directory `go mod download -json` reported. The link is
/// relative when the module lies inside the cache, so a moved or restored cache still resolves;
/// it is computed for the final `entry`, which sits as deep below the cache root as `staging`.
fn link_module(
    download_json: &str,
    staging: &Path,
    entry: &Path,
    cache_root: &Path,
) -> Result<(), String> {
    let dir = downloaded_module_dir(download_json)?;
    let target = match (dir.strip_prefix(cache_root), entry.strip_prefix(cache_root)) {
        (Ok(inside), Ok(entry_rel)) => {
            let mut up = PathBuf::new();
            for _ in entry_rel.components() {
                up.push("..");
            }
            up.join(inside)
        }
        _ => dir.clone(),
    };
    let link = staging.join(MODULE_LINK);
    std::os::unix::fs::symlink(&target, &link)
        .map_err(|e| format!("linking {} to {}: {e}", link.display(), target.display()))
}

/// Copies the CRD manifest out of the module directory `go mod download -json` reported.
fn copy_crds(download_json: &str, staging: &Path) -> Result<(), String> {
    let dir = downloaded_module_dir(download_json)?;
    let source = dir.join(CRD_MANIFEST_IN_MODULE);
    let target = staging.join(Artifact::Crds.relative_path());
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::copy(&source, &target)
        .map_err(|e| format!("copying {} failed: {e}", source.display()))?;
    // The module cache is read-only; the copy should be an ordinary file.
    let mut perms = std::fs::metadata(&target)
        .map_err(|e| format!("{}: {e}", target.display()))?
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&target, perms).map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(())
}

fn manifest_for(
    key: &CacheKey,
    commands: Vec<Vec<String>>,
    artifacts: Vec<ManifestArtifact>,
    duration: Duration,
) -> Manifest {
    Manifest {
        component: key.component.slug().to_string(),
        version: key.version.clone(),
        go_version: key.go.as_ref().map(|g| g.version.clone()),
        goos: key.go.as_ref().map(|g| g.goos.clone()),
        goarch: key.go.as_ref().map(|g| g.goarch.clone()),
        recipe_revision: key.recipe_revision,
        wrapper_sum: key.wrapper_sum.clone(),
        commands,
        artifacts,
        build_seconds: duration.as_secs_f64(),
    }
}

/// Replaces `entry` (if present, e.g. a tampered or partial build) with the finished `staging`.
fn install(staging: &Path, entry: &Path) -> Result<(), ToolchainError> {
    if entry.exists() {
        std::fs::remove_dir_all(entry)
            .map_err(ToolchainError::io("removing invalid cache entry", entry))?;
    }
    if let Some(parent) = entry.parent() {
        std::fs::create_dir_all(parent).map_err(ToolchainError::io("creating", parent))?;
    }
    std::fs::rename(staging, entry).map_err(ToolchainError::io(
        format!("moving finished build {} to", staging.display()),
        entry,
    ))
}
