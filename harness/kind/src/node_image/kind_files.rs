//! Stages the node's file tree: kind's base image files (entrypoint, systemd units, containerd
//! and kubelet configuration, helper scripts) read from kind's module directory with the modes
//! kind's base image gives them, patched (see [`super::patch`]), plus the Kubernetes binaries
//! and `/kind/version`. The staged tree is copied into the build container in one `docker cp`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::patch;
use crate::error::{KindError, Result};

/// Where the base image's files live inside kind's module.
pub(crate) const FILES_DIR: &str = "images/base/files";

/// kind's base files directory inside its module, checked to exist.
pub(crate) fn files_dir(kind_module_dir: &Path) -> Result<PathBuf> {
    let dir = kind_module_dir.join(FILES_DIR);
    let entrypoint = dir.join("usr/local/bin/entrypoint");
    if !entrypoint.is_file() {
        return Err(KindError::MissingInput {
            what: "kind's node entrypoint (is the kind module directory right?)".to_owned(),
            path: entrypoint,
        });
    }
    Ok(dir)
}

/// The sandbox image kind's containerd config names.
pub(crate) fn sandbox_image(kind_module_dir: &Path) -> Result<String> {
    let path = files_dir(kind_module_dir)?.join("etc/containerd/config.toml");
    let text = std::fs::read_to_string(&path).map_err(KindError::io("reading", &path))?;
    patch::sandbox_image(&text).ok_or_else(|| KindError::UpstreamChanged {
        path,
        what: "no `sandbox_image` setting".to_owned(),
    })
}

/// Copies kind's base files into `stage` (which becomes the image's `/`), with modes as kind's
/// base image sets them: scripts in `usr/local/bin` and `kind/bin` executable, everything else
/// readable, directories 0755.
pub(crate) fn stage_kind_files(kind_module_dir: &Path, stage: &Path) -> Result<()> {
    let src = files_dir(kind_module_dir)?;
    let mut files = Vec::new();
    collect(&src, &src, &mut files)?;
    for rel in files {
        let from = src.join(&rel);
        let to = stage.join(&rel);
        let executable = rel.starts_with("usr/local/bin") || rel.starts_with("kind/bin");
        let mode = if executable { 0o755 } else { 0o644 };
        let patched = match rel.to_str() {
            Some("usr/local/bin/entrypoint") => Some(patch_file(&from, patch::entrypoint)?),
            Some("etc/containerd/config.toml") => {
                Some(patch_file(&from, patch::containerd_config)?)
            }
            _ => None,
        };
        match patched {
            Some(text) => write_file(&to, text.as_bytes(), mode)?,
            None => copy_file(&from, &to, mode)?,
        }
    }
    Ok(())
}

fn patch_file(path: &Path, f: fn(&str) -> Result<String, String>) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(KindError::io("reading", path))?;
    f(&text).map_err(|what| KindError::UpstreamChanged {
        path: path.to_owned(),
        what,
    })
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(KindError::io("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(KindError::io("listing", dir))?;
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_owned());
        }
    }
    Ok(())
}

/// Creates `path`'s parent directories (0755, so the image's directories stay traversable).
fn make_parents(stage_file: &Path) -> Result<()> {
    let Some(parent) = stage_file.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(parent).map_err(KindError::io("creating", parent))?;
    Ok(())
}

/// Writes `bytes` to `path` with `mode`.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    make_parents(path)?;
    std::fs::write(path, bytes).map_err(KindError::io("writing", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(KindError::io("setting the mode of", path))
}

/// Copies `from` to `to` with `mode`; a hard link when the source already has that mode and
/// lives on the same file system (large binaries then cost nothing to stage).
pub(crate) fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<()> {
    make_parents(to)?;
    let meta = std::fs::metadata(from).map_err(|_| KindError::MissingInput {
        what: "a file for the node image".to_owned(),
        path: from.to_owned(),
    })?;
    let _ = std::fs::remove_file(to);
    if meta.permissions().mode() & 0o7777 == mode && std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(KindError::io("copying", from))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .map_err(KindError::io("setting the mode of", to))
}

/// Makes every directory under (and including) `stage` mode 0755: `docker cp` applies the
/// staged directories' modes to the image's (including `/`).
pub(crate) fn normalise_dirs(stage: &Path) -> Result<()> {
    std::fs::set_permissions(stage, std::fs::Permissions::from_mode(0o755))
        .map_err(KindError::io("setting the mode of", stage))?;
    let entries = std::fs::read_dir(stage).map_err(KindError::io("listing", stage))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            normalise_dirs(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_kind_module() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join(FILES_DIR);
        for (rel, text) in [
            (
                "usr/local/bin/entrypoint",
                "#!/bin/bash\nfix_mount\nexec \"$@\"\n",
            ),
            ("kind/bin/helper.sh", "#!/bin/bash\n"),
            ("kind/README.txt", "readme\n"),
            (
                "etc/containerd/config.toml",
                "  sandbox_image = \"registry.k8s.io/pause:3.10\"\n  restrict_oom_score_adj = false\n",
            ),
        ] {
            let path = files.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            // The module cache is read-only.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        }
        dir
    }

    #[test]
    fn staged_files_get_kinds_modes_and_patches() {
        let module = fake_kind_module();
        let stage = tempfile::tempdir().unwrap();
        stage_kind_files(module.path(), stage.path()).unwrap();
        normalise_dirs(stage.path()).unwrap();
        let mode = |rel: &str| {
            std::fs::metadata(stage.path().join(rel))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("usr/local/bin/entrypoint"), 0o755);
        assert_eq!(mode("kind/bin/helper.sh"), 0o755);
        assert_eq!(mode("kind/README.txt"), 0o644);
        assert_eq!(mode("kind"), 0o755);
        assert_eq!(mode(""), 0o755);
        let entrypoint =
            std::fs::read_to_string(stage.path().join("usr/local/bin/entrypoint")).unwrap();
        assert!(entrypoint.contains("podid_make_mounts_writable"));
        let config =
            std::fs::read_to_string(stage.path().join("etc/containerd/config.toml")).unwrap();
        assert!(config.contains("restrict_oom_score_adj = true"));
        assert_eq!(
            sandbox_image(module.path()).unwrap(),
            "registry.k8s.io/pause:3.10"
        );
    }

    #[test]
    fn missing_module_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = stage_kind_files(dir.path(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("kind's node entrypoint"), "{err}");
    }
}
