//! Cache keys and cache locking. Every cached artefact (root tarball, image tag) is named by a
//! hash of everything that went into it, so a changed input can never reuse a stale result and
//! an unchanged one never rebuilds.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{KindError, Result};

/// Builds a cache key from labelled inputs. Labels keep `("a", "bc")` and `("ab", "c")` apart,
/// and every field is length-prefixed so no two input lists hash alike.
#[derive(Clone)]
pub struct Fingerprint {
    hasher: Sha256,
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprint").finish_non_exhaustive()
    }
}

impl Fingerprint {
    /// A fingerprint for one kind of artefact; `kind` names it ("rootfs", "node-image", …).
    pub fn new(kind: &str) -> Self {
        let mut fp = Self {
            hasher: Sha256::new(),
        };
        fp.add_str("kind", kind);
        fp
    }

    fn field(&mut self, label: &str, bytes: &[u8]) {
        self.hasher.update((label.len() as u64).to_le_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// Adds a string input.
    pub fn add_str(&mut self, label: &str, value: &str) -> &mut Self {
        self.field(label, value.as_bytes());
        self
    }

    /// Adds a list of strings (order matters; sort first when it should not).
    pub fn add_list<S: AsRef<str>>(&mut self, label: &str, values: &[S]) -> &mut Self {
        self.field(label, &(values.len() as u64).to_le_bytes());
        for v in values {
            self.field(label, v.as_ref().as_bytes());
        }
        self
    }

    /// Adds the contents of a file (not its path or timestamps).
    pub fn add_file(&mut self, label: &str, path: &Path) -> Result<&mut Self> {
        let digest = file_digest(path)?;
        self.field(label, &digest);
        Ok(self)
    }

    /// Adds every regular file and symlink under `dir`: relative paths, permission bits and
    /// contents, in sorted order.
    pub fn add_tree(&mut self, label: &str, dir: &Path) -> Result<&mut Self> {
        let mut files = Vec::new();
        walk(dir, dir, &mut files)?;
        files.sort();
        for rel in files {
            let path = dir.join(&rel);
            let meta = std::fs::symlink_metadata(&path)
                .map_err(KindError::io("reading metadata of", &path))?;
            self.add_str(label, &rel.to_string_lossy());
            if meta.file_type().is_symlink() {
                let target =
                    std::fs::read_link(&path).map_err(KindError::io("reading symlink", &path))?;
                self.add_str("symlink", &target.to_string_lossy());
            } else {
                use std::os::unix::fs::PermissionsExt;
                self.add_str("mode", &format!("{:o}", meta.permissions().mode() & 0o7777));
                self.add_file("content", &path)?;
            }
        }
        Ok(self)
    }

    /// The key: the first `len` hex digits of the hash.
    pub fn hex(&self, len: usize) -> String {
        let digest = self.hasher.clone().finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        hex[..len.min(hex.len())].to_owned()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(KindError::io("listing", dir))?;
    for entry in entries {
        let entry = entry.map_err(KindError::io("listing", dir))?;
        let path = entry.path();
        let ty = entry
            .file_type()
            .map_err(KindError::io("reading the type of", &path))?;
        if ty.is_dir() {
            walk(root, &path, out)?;
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_owned());
        }
    }
    Ok(())
}

/// SHA-256 of a file's contents.
pub(crate) fn file_digest(path: &Path) -> Result<[u8; 32]> {
    let mut file = File::open(path).map_err(KindError::io("opening (to hash)", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(KindError::io("reading (to hash)", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// An exclusive lock on a cache entry, held until dropped, so two processes building the same
/// artefact do not interleave (the second waits, then finds the first one's result).
#[derive(Debug)]
pub(crate) struct CacheLock {
    _file: File,
}

impl CacheLock {
    /// Blocks (on a blocking thread) until the lock at `path` is ours.
    pub(crate) async fn acquire(path: PathBuf) -> Result<CacheLock> {
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(KindError::io("creating cache directory", parent))?;
            }
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(KindError::io("opening cache lock", &path))?;
            fs4::fs_std::FileExt::lock_exclusive(&file)
                .map_err(KindError::io("locking cache lock", &path))?;
            Ok(CacheLock { _file: file })
        })
        .await
        .map_err(|e| KindError::invalid("waiting for a cache lock", e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_lengths_keep_inputs_apart() {
        let a = Fingerprint::new("t").add_str("a", "bc").hex(64);
        let b = Fingerprint::new("t").add_str("ab", "c").hex(64);
        assert_ne!(a, b);
        let l1 = Fingerprint::new("t").add_list("p", &["a", "b"]).hex(64);
        let l2 = Fingerprint::new("t").add_list("p", &["ab"]).hex(64);
        assert_ne!(l1, l2);
    }

    #[test]
    fn same_inputs_same_key_and_kind_matters() {
        let k1 = Fingerprint::new("x").add_str("v", "1").hex(16);
        let k2 = Fingerprint::new("x").add_str("v", "1").hex(16);
        let k3 = Fingerprint::new("y").add_str("v", "1").hex(16);
        assert_eq!(k1, k2);
        assert_ne!(k1, k3);
        assert_eq!(k1.len(), 16);
    }

    #[test]
    fn tree_key_follows_content_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let file = dir.path().join("sub/f");
        std::fs::write(&file, "one").unwrap();
        let key = |d: &Path| Fingerprint::new("t").add_tree("tree", d).unwrap().hex(64);
        let k1 = key(dir.path());
        assert_eq!(k1, key(dir.path()));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        let k2 = key(dir.path());
        assert_ne!(k1, k2);
        std::fs::write(&file, "two").unwrap();
        assert_ne!(k2, key(dir.path()));
    }
}
