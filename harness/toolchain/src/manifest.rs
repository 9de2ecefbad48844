//! `manifest.json`: the record that makes a cache entry complete, and its verification.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cache_layout::{CacheKey, GoIdentity};
use crate::component::Component;
use crate::digest::sha256_file;

/// File name of the manifest inside a cache entry.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";

/// What a finished build recorded about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// Component slug.
    pub component: String,
    /// Pinned upstream version.
    pub version: String,
    /// `go env GOVERSION` of the build, for compiled components.
    pub go_version: Option<String>,
    /// `go env GOOS`.
    pub goos: Option<String>,
    /// `go env GOARCH`.
    pub goarch: Option<String>,
    /// Recipe revision of the build.
    pub recipe_revision: u32,
    /// Hash prefix of the wrapper go.sum.
    pub wrapper_sum: String,
    /// The `go` command lines that produced the artifacts.
    pub commands: Vec<Vec<String>>,
    /// Every artifact with its digest.
    pub artifacts: Vec<ManifestArtifact>,
    /// Wall-clock build time in seconds.
    pub build_seconds: f64,
}

/// One produced file and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestArtifact {
    /// Path relative to the cache entry.
    pub path: String,
    /// Hex SHA-256 of the file.
    pub sha256: String,
}

impl Manifest {
    /// The key this manifest was built for, as recorded.
    pub fn key(&self) -> Option<CacheKey> {
        let component = Component::every().find(|c| c.slug() == self.component)?;
        let go = match (&self.go_version, &self.goos, &self.goarch) {
            (Some(version), Some(goos), Some(goarch)) => Some(GoIdentity {
                version: version.clone(),
                goos: goos.clone(),
                goarch: goarch.clone(),
            }),
            _ => None,
        };
        Some(CacheKey {
            component,
            version: self.version.clone(),
            go,
            recipe_revision: self.recipe_revision,
            wrapper_sum: self.wrapper_sum.clone(),
        })
    }

    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read(&path).map_err(|e| format!("no readable {MANIFEST_FILE}: {e}"))?;
        serde_json::from_slice(&text).map_err(|e| format!("{MANIFEST_FILE} is malformed: {e}"))
    }

    /// Writes `dir/manifest.json`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(MANIFEST_FILE), text)
    }
}

/// Checks that `dir` holds a complete build for `expected`: matching manifest, every artifact
/// present with its recorded digest. Returns why not, for status output and logs.
pub(crate) fn verify_entry(dir: &Path, expected: &CacheKey) -> Result<Manifest, String> {
    let manifest = Manifest::read(dir)?;
    let recorded = manifest.key().ok_or_else(|| {
        format!(
            "{MANIFEST_FILE} names unknown component {}",
            manifest.component
        )
    })?;
    if &recorded != expected {
        return Err(format!(
            "{MANIFEST_FILE} is for {} but {} is wanted",
            recorded.dir_name(),
            expected.dir_name()
        ));
    }
    for wanted in expected.component.artifacts() {
        let rel = wanted.relative_path();
        let entry = manifest
            .artifacts
            .iter()
            .find(|a| a.path == rel)
            .ok_or_else(|| format!("{MANIFEST_FILE} does not list {rel}"))?;
        let actual =
            sha256_file(&dir.join(rel)).map_err(|e| format!("{rel} is unreadable: {e}"))?;
        if actual != entry.sha256 {
            return Err(format!(
                "{rel} was modified (sha256 {actual}, manifest says {})",
                entry.sha256
            ));
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_hex;

    fn key() -> CacheKey {
        CacheKey::new(
            Component::Etcd,
            Some(GoIdentity {
                version: "go1.26.8".into(),
                goos: "linux".into(),
                goarch: "amd64".into(),
            }),
        )
    }

    fn entry_with_etcd(contents: &[u8]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/etcd"), contents).unwrap();
        let k = key();
        let go = k.go.clone().unwrap();
        Manifest {
            component: "etcd".into(),
            version: k.version.clone(),
            go_version: Some(go.version),
            goos: Some(go.goos),
            goarch: Some(go.goarch),
            recipe_revision: k.recipe_revision,
            wrapper_sum: k.wrapper_sum.clone(),
            commands: vec![vec!["go".into(), "build".into()]],
            artifacts: vec![ManifestArtifact {
                path: "bin/etcd".into(),
                sha256: sha256_hex(contents),
            }],
            build_seconds: 1.5,
        }
        .write(dir.path())
        .unwrap();
        dir
    }

    #[test]
    fn complete_entry_verifies_and_round_trips_its_key() {
        let dir = entry_with_etcd(b"etcd binary");
        let manifest = verify_entry(dir.path(), &key()).unwrap();
        assert_eq!(manifest.key(), Some(key()));
    }

    #[test]
    fn tampered_binary_is_rejected() {
        let dir = entry_with_etcd(b"etcd binary");
        std::fs::write(dir.path().join("bin/etcd"), b"something else").unwrap();
        let err = verify_entry(dir.path(), &key()).unwrap_err();
        assert!(err.contains("bin/etcd was modified"), "{err}");
    }

    #[test]
    fn missing_binary_or_manifest_is_rejected() {
        let dir = entry_with_etcd(b"etcd binary");
        std::fs::remove_file(dir.path().join("bin/etcd")).unwrap();
        let err = verify_entry(dir.path(), &key()).unwrap_err();
        assert!(err.contains("bin/etcd is unreadable"), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = verify_entry(empty.path(), &key()).unwrap_err();
        assert!(err.contains("no readable manifest.json"), "{err}");
    }

    #[test]
    fn manifest_for_another_key_is_rejected() {
        let dir = entry_with_etcd(b"etcd binary");
        let mut other = key();
        other.go.as_mut().unwrap().version = "go1.27.0".into();
        let err = verify_entry(dir.path(), &other).unwrap_err();
        assert!(err.contains("is wanted"), "{err}");
    }

    #[test]
    fn truncated_manifest_is_rejected() {
        let dir = entry_with_etcd(b"etcd binary");
        std::fs::write(dir.path().join(MANIFEST_FILE), b"{\"component\":").unwrap();
        let err = verify_entry(dir.path(), &key()).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
    }
}
