//! Where things live inside the toolchain cache directory, and the key naming each build.

use std::path::{Path, PathBuf};

use crate::component::Component;
use crate::digest::sha256_hex;
use crate::go_tool::{GoCaches, GoTool};
use crate::pins::RECIPE_REVISION;

/// The Go toolchain identity a compiled component is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoIdentity {
    /// e.g. `go1.26.8`.
    pub version: String,
    /// e.g. `linux`.
    pub goos: String,
    /// e.g. `amd64`.
    pub goarch: String,
}

impl GoIdentity {
    /// The identity of a probed `go` command.
    pub fn of(go: &GoTool) -> GoIdentity {
        GoIdentity {
            version: go.version.clone(),
            goos: go.goos.clone(),
            goarch: go.goarch.clone(),
        }
    }
}

/// Everything a cached build depends on; equal keys mean the cached build can be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheKey {
    /// The component.
    pub component: Component,
    /// Pinned upstream version.
    pub version: String,
    /// Go toolchain, for compiled components (`None` for plain files such as the CRDs).
    pub go: Option<GoIdentity>,
    /// [`RECIPE_REVISION`] at build time.
    pub recipe_revision: u32,
    /// First 16 hex digits of the SHA-256 of the wrapper's go.sum.
    pub wrapper_sum: String,
}

impl CacheKey {
    /// The key for building `component` with `go` (ignored for Go-independent components).
    pub fn new(component: Component, go: Option<GoIdentity>) -> CacheKey {
        let go = go.filter(|_| component.depends_on_go_version());
        CacheKey {
            component,
            version: component.version().to_string(),
            go,
            recipe_revision: RECIPE_REVISION,
            wrapper_sum: sha256_hex(component.wrapper().go_sum.as_bytes())[..16].to_string(),
        }
    }

    /// Directory name, e.g. `v3.6.13-go1.26.8-linux-amd64-r1-0123456789abcdef`.
    pub fn dir_name(&self) -> String {
        let go = match &self.go {
            Some(go) => format!("-{}-{}-{}", go.version, go.goos, go.goarch),
            None => String::new(),
        };
        format!(
            "{}{go}-r{}-{}",
            self.version, self.recipe_revision, self.wrapper_sum
        )
    }
}

/// Paths inside the cache root.
#[derive(Debug, Clone)]
pub(crate) struct CacheLayout {
    root: PathBuf,
}

impl CacheLayout {
    /// Layout rooted at `root`.
    pub fn new(root: &Path) -> CacheLayout {
        CacheLayout {
            root: root.to_path_buf(),
        }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// File locked exclusively while building.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// Build log of a component.
    pub fn log_file(&self, component: Component) -> PathBuf {
        self.root
            .join("logs")
            .join(format!("{}.log", component.slug()))
    }

    /// Go module and build caches, kept across runs so interrupted builds resume.
    pub fn go_caches(&self) -> GoCaches {
        GoCaches {
            module_cache: self.root.join("gomod"),
            build_cache: self.root.join("gobuild"),
        }
    }

    /// Parent of all cache entries of one component.
    pub fn component_dir(&self, component: Component) -> PathBuf {
        self.root.join(component.slug())
    }

    /// The finished cache entry for `key`.
    pub fn entry_dir(&self, key: &CacheKey) -> PathBuf {
        self.component_dir(key.component).join(key.dir_name())
    }

    /// Where builds in progress live before being renamed into place.
    pub fn staging_root(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh staging directory name for one build of `component` in this process.
    pub fn staging_dir(&self, component: Component) -> PathBuf {
        self.staging_root()
            .join(format!("{}-{}", component.slug(), std::process::id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(version: &str) -> GoIdentity {
        GoIdentity {
            version: version.into(),
            goos: "linux".into(),
            goarch: "amd64".into(),
        }
    }

    #[test]
    fn key_names_version_go_platform_revision_and_sum() {
        let key = CacheKey::new(Component::Etcd, Some(go("go1.26.8")));
        let name = key.dir_name();
        assert!(
            name.starts_with(&format!("v3.6.13-go1.26.8-linux-amd64-r{RECIPE_REVISION}-")),
            "{name}"
        );
        assert_eq!(name.rsplit('-').next().unwrap().len(), 16);
    }

    #[test]
    fn keys_change_with_go_version_and_differ_between_components() {
        let a = CacheKey::new(Component::Etcd, Some(go("go1.26.8")));
        let b = CacheKey::new(Component::Etcd, Some(go("go1.26.9")));
        assert_ne!(a.dir_name(), b.dir_name());
        let k8s = CacheKey::new(Component::KubeApiserver, Some(go("go1.26.8")));
        assert_ne!(a.wrapper_sum, k8s.wrapper_sum, "go.sum hashes must differ");
    }

    #[test]
    fn keys_change_with_recipe_revision_and_wrapper_sum() {
        let base = CacheKey::new(Component::Etcd, Some(go("go1.26.8")));
        let bumped = CacheKey {
            recipe_revision: base.recipe_revision + 1,
            ..base.clone()
        };
        let repinned = CacheKey {
            wrapper_sum: "0000000000000000".into(),
            ..base.clone()
        };
        assert_ne!(base.dir_name(), bumped.dir_name());
        assert_ne!(base.dir_name(), repinned.dir_name());
    }

    #[test]
    fn crds_do_not_depend_on_go() {
        let a = CacheKey::new(Component::AadPodIdentityCrds, Some(go("go1.26.8")));
        let b = CacheKey::new(Component::AadPodIdentityCrds, None);
        assert_eq!(a, b);
        assert!(a.dir_name().starts_with("v1.8.17-r"), "{}", a.dir_name());
    }

    #[test]
    fn staging_and_entries_are_equally_deep_so_relative_module_links_survive_the_rename() {
        let layout = CacheLayout::new(Path::new("/c"));
        let key = CacheKey::new(Component::KindSource, None);
        let depth = |p: PathBuf| p.strip_prefix("/c").unwrap().components().count();
        assert_eq!(
            depth(layout.staging_dir(Component::KindSource)),
            depth(layout.entry_dir(&key))
        );
    }

    #[test]
    fn layout_paths() {
        let layout = CacheLayout::new(Path::new("/c"));
        assert_eq!(layout.lock_file(), Path::new("/c/.lock"));
        assert_eq!(
            layout.log_file(Component::KubeApiserver),
            Path::new("/c/logs/kube-apiserver.log")
        );
        assert_eq!(layout.go_caches().module_cache, Path::new("/c/gomod"));
        assert_eq!(layout.go_caches().build_cache, Path::new("/c/gobuild"));
    }
}
