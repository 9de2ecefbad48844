//! The pause binary (the process holding each pod sandbox's namespaces), compiled statically
//! from Kubernetes' `pause.c` because its image cannot be pulled. Cached by source and version.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cache::{CacheLock, Fingerprint};
use crate::error::{KindError, Result};
use crate::process::Cmd;
use crate::progress::{Outcome, Phase, Progress};

/// Where the pause binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseInput {
    /// Kubernetes' `build/pause/linux/pause.c`, compiled here with `gcc -static`.
    Source(PathBuf),
    /// A ready, statically linked pause binary.
    Binary(PathBuf),
}

impl PauseInput {
    /// The source or binary file.
    pub fn path(&self) -> &Path {
        match self {
            PauseInput::Source(p) | PauseInput::Binary(p) => p,
        }
    }
}

/// The pause binary for `input`, compiling (once per source and `version`) if needed.
pub(crate) async fn ensure_pause(
    input: &PauseInput,
    version: &str,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let source = match input {
        PauseInput::Binary(path) => {
            if !path.is_file() {
                return Err(KindError::MissingInput {
                    what: "the pause binary".to_owned(),
                    path: path.clone(),
                });
            }
            return Ok(path.clone());
        }
        PauseInput::Source(path) => path,
    };
    if !source.is_file() {
        return Err(KindError::MissingInput {
            what: "Kubernetes' pause.c".to_owned(),
            path: source.clone(),
        });
    }
    let key = Fingerprint::new("pause")
        .add_file("source", source)?
        .add_str("version", version)
        .hex(16);
    let dir = cache_dir.join("pause");
    let binary = dir.join(format!("pause-{key}"));
    if binary.is_file() {
        progress.finished(&Phase::Pause, Outcome::Cached, Default::default());
        return Ok(binary);
    }
    let _lock = CacheLock::acquire(dir.join("pause.lock")).await?;
    if binary.is_file() {
        return Ok(binary);
    }
    let started = Instant::now();
    progress.started(&Phase::Pause);
    let partial = dir.join(format!(".pause-{key}.partial"));
    Cmd::new(
        "gcc",
        "compiling the pause binary (needs gcc and libc6-dev: apt-get install gcc libc6-dev)",
    )
    .args(["-Os", "-Wall", "-static"])
    .arg(format!("-DVERSION=v{version}-podid"))
    .arg("-o")
    .arg(&partial)
    .arg(source)
    .run()
    .await?;
    std::fs::rename(&partial, &binary).map_err(KindError::io("storing", &binary))?;
    progress.finished(&Phase::Pause, Outcome::Done, started.elapsed());
    Ok(binary)
}
