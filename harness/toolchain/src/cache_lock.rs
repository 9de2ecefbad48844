//! The exclusive lock on the cache that keeps parallel podid processes from building twice.

use std::fs::{File, OpenOptions};
use std::path::Path;

use fs4::fs_std::FileExt;

use crate::error::ToolchainError;
use crate::observer::{BuildEvent, BuildObserver};

/// Holds an exclusive `flock` on the cache's lock file until dropped.
#[derive(Debug)]
pub(crate) struct CacheLock {
    _file: File,
}

impl CacheLock {
    /// Takes the lock, reporting [`BuildEvent::WaitingForLock`] if another holder makes us wait.
    pub fn acquire(path: &Path, observer: &dyn BuildObserver) -> Result<CacheLock, ToolchainError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(ToolchainError::io("creating cache directory", parent))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(ToolchainError::io("opening lock file", path))?;
        let acquired =
            FileExt::try_lock_exclusive(&file).map_err(ToolchainError::io("locking", path))?;
        if !acquired {
            observer.event(BuildEvent::WaitingForLock {
                lock: path.to_path_buf(),
            });
            FileExt::lock_exclusive(&file).map_err(ToolchainError::io("locking", path))?;
        }
        Ok(CacheLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::{NoopObserver, RecordingObserver};
    use std::time::{Duration, Instant};

    #[test]
    fn second_holder_waits_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/.lock");
        let first = CacheLock::acquire(&path, &NoopObserver).unwrap();
        let observer = RecordingObserver::default();
        let started = Instant::now();
        std::thread::scope(|s| {
            let waiter =
                s.spawn(|| CacheLock::acquire(&path, &observer).map(|_| started.elapsed()));
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
            let waited = waiter.join().unwrap().unwrap();
            assert!(
                waited >= Duration::from_millis(250),
                "took the lock after {waited:?}"
            );
        });
        let events = observer.events.into_inner().unwrap();
        assert_eq!(events, [BuildEvent::WaitingForLock { lock: path.clone() }]);
    }
}
