//! Debian root filesystems built with `debootstrap`, for images that cannot be pulled: the kind
//! node's base (systemd, containerd, runc, iptables, …) and a small root for component images
//! that shell out to iptables (kube-proxy, NMI). Each root is cached as a tarball named by a hash
//! of its suite and package list, and imported into docker on demand.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cache::{CacheLock, Fingerprint};
use crate::docker::Docker;
use crate::error::{KindError, Result};
use crate::image::BuiltImage;
use crate::mirror::DebianMirror;
use crate::process::Cmd;
use crate::progress::{Outcome, Phase, Progress};

/// Bump when the way a root is assembled changes, so old tarballs are not reused.
const ROOTFS_REVISION: &str = "r1";

/// The Debian release every root is built from (the release kind's base image tracks closely
/// enough, and whose systemd still boots on cgroup v1 hosts).
pub const DEFAULT_SUITE: &str = "bookworm";

/// What goes into one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsSpec {
    /// Short name, used in file and image names (`node`, `iptables`).
    pub name: String,
    /// Debian suite.
    pub suite: String,
    /// Packages on top of debootstrap's `minbase` variant.
    pub packages: Vec<String>,
}

/// A built (or cached) root tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The tarball (numeric owners, rooted at `.`).
    pub tarball: PathBuf,
    /// The cache key in its name.
    pub key: String,
    /// Whether it was built by this call.
    pub built: bool,
    /// How long this call took.
    pub took: Duration,
}

impl RootfsSpec {
    /// The kind node's base: the packages kind's base image installs (services, Kubernetes
    /// node dependencies, storage helpers, tools kind itself runs), plus containerd, runc and
    /// the CNI plugins from Debian instead of kind's own builds of them.
    pub fn kind_node() -> Self {
        Self::new(
            "node",
            &[
                // services
                "systemd",
                // Kubernetes node dependencies
                "conntrack",
                "iptables",
                "nftables",
                "iproute2",
                "ethtool",
                "util-linux",
                "mount",
                "kmod",
                "socat",
                // container runtime
                "libseccomp2",
                "pigz",
                "fuse-overlayfs",
                "containerd",
                "runc",
                "containernetworking-plugins",
                // network-backed storage
                "nfs-common",
                "open-iscsi",
                "e2fsprogs",
                // what kind and its scripts run
                "bash",
                "ca-certificates",
                "curl",
                "jq",
                "procps",
            ],
        )
    }

    /// A small root for component images that need iptables (kube-proxy, NMI).
    pub fn iptables() -> Self {
        Self::new("iptables", &["iptables", "conntrack", "ca-certificates"])
    }

    /// A root named `name` with `packages` on the default suite.
    pub fn new(name: &str, packages: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            suite: DEFAULT_SUITE.to_owned(),
            packages: packages.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// The cache key: suite, sorted package list and the assembly revision.
    pub fn cache_key(&self) -> String {
        let mut packages = self.packages.clone();
        packages.sort();
        packages.dedup();
        Fingerprint::new("rootfs")
            .add_str("revision", ROOTFS_REVISION)
            .add_str("suite", &self.suite)
            .add_str("variant", "minbase")
            .add_list("packages", &packages)
            .hex(16)
    }

    /// The docker tag of this root's image.
    pub fn image_tag(&self) -> String {
        format!(
            "podid-kind/root-{}:{}-{}",
            self.name,
            self.suite,
            self.cache_key()
        )
    }

    fn tarball_path(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join("rootfs").join(format!(
            "{}-{}-{}.tar",
            self.name,
            self.suite,
            self.cache_key()
        ))
    }
}

/// The root's tarball, built with debootstrap unless the cache has it.
pub async fn ensure_rootfs(
    spec: &RootfsSpec,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<Rootfs> {
    let started = Instant::now();
    let phase = Phase::Rootfs {
        name: spec.name.clone(),
    };
    let tarball = spec.tarball_path(cache_dir);
    let key = spec.cache_key();
    let cached = |took| Rootfs {
        tarball: tarball.clone(),
        key: key.clone(),
        built: false,
        took,
    };
    if tarball.is_file() {
        progress.finished(&phase, Outcome::Cached, started.elapsed());
        return Ok(cached(started.elapsed()));
    }
    let dir = cache_dir.join("rootfs");
    let _lock = CacheLock::acquire(dir.join(format!("{}.lock", spec.name))).await?;
    if tarball.is_file() {
        progress.finished(&phase, Outcome::Cached, started.elapsed());
        return Ok(cached(started.elapsed()));
    }
    progress.started(&phase);
    let mirror = DebianMirror::detect(&spec.suite)?;
    let work = dir.join(format!("tmp-{}-{}", spec.name, std::process::id()));
    let result = build(spec, &mirror, &work, &tarball).await;
    remove_root(&work).await?;
    result?;
    let took = started.elapsed();
    progress.finished(&phase, Outcome::Done, took);
    Ok(Rootfs {
        tarball,
        key,
        built: true,
        took,
    })
}

/// The root as a docker image (`docker import` of its tarball), built if missing.
pub async fn ensure_root_image(
    docker: &Docker,
    spec: &RootfsSpec,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<BuiltImage> {
    let started = Instant::now();
    let tag = spec.image_tag();
    let phase = Phase::RootImage {
        name: spec.name.clone(),
    };
    if docker.image_exists(&tag).await? {
        progress.finished(&phase, Outcome::Cached, started.elapsed());
        return Ok(BuiltImage {
            tag,
            built: false,
            took: started.elapsed(),
        });
    }
    let rootfs = ensure_rootfs(spec, cache_dir, progress).await?;
    let importing = Instant::now();
    progress.started(&phase);
    let changes = vec![
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        format!("LABEL podid.rootfs={}", spec.cache_key()),
    ];
    docker.import(&rootfs.tarball, &tag, &changes).await?;
    progress.finished(&phase, Outcome::Done, importing.elapsed());
    Ok(BuiltImage {
        tag,
        built: true,
        took: started.elapsed(),
    })
}

async fn build(
    spec: &RootfsSpec,
    mirror: &DebianMirror,
    work: &Path,
    tarball: &Path,
) -> Result<()> {
    // A previous run killed mid-build may have left its directory (and mounts) behind.
    remove_root(work).await?;
    let root = work.join("root");
    std::fs::create_dir_all(work).map_err(KindError::io("creating", work))?;
    let log = tarball.with_extension("log");
    let captured = Cmd::new(
        "debootstrap",
        format!("building the Debian root `{}` with debootstrap", spec.name),
    )
    .arg("--variant=minbase")
    .arg("--components=main")
    .arg(format!("--include={}", spec.packages.join(",")))
    .arg(&spec.suite)
    .arg(&root)
    .arg(&mirror.0)
    .capture()
    .await?;
    let _ = std::fs::write(&log, format!("{}\n{}", captured.stdout, captured.stderr));
    if !captured.success {
        return Err(KindError::Command {
            action: format!(
                "building the Debian root `{}` from {} (full log: {})",
                spec.name,
                mirror.0,
                log.display()
            ),
            command: "debootstrap".to_owned(),
            status: captured.status.clone(),
            output: captured.tail(),
        });
    }
    // Package caches and indexes are only needed to install; they would double the image.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_dir(&root.join(dir))?;
    }
    let partial = tarball.with_extension("tar.partial");
    Cmd::new("tar", format!("packing the Debian root `{}`", spec.name))
        .arg("--numeric-owner")
        .arg("--xattrs")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&partial)
        .arg(".")
        .run()
        .await?;
    std::fs::rename(&partial, tarball).map_err(KindError::io("storing", tarball))?;
    Ok(())
}

/// Removes the regular files (not directories) directly in `dir`.
fn clear_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            std::fs::remove_file(&path).map_err(KindError::io("removing", &path))?;
        }
    }
    Ok(())
}

/// Deletes a debootstrap work directory, first unmounting anything still mounted inside it
/// (debootstrap mounts /proc and /sys in the target and leaves them if it is killed); deleting
/// through such a mount would reach the host's files.
async fn remove_root(work: &Path) -> Result<()> {
    if !work.exists() {
        return Ok(());
    }
    let mounts = mounts_under(work);
    for mount in mounts.iter().rev() {
        Cmd::new(
            "umount",
            format!("unmounting {} left by debootstrap", mount.display()),
        )
        .arg("--lazy")
        .arg(mount)
        .run()
        .await?;
    }
    if !mounts_under(work).is_empty() {
        return Err(KindError::invalid(
            format!("removing {}", work.display()),
            "file systems are still mounted inside it",
        ));
    }
    let path = work.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::remove_dir_all(&path).map_err(KindError::io("removing", &path))
    })
    .await
    .map_err(|e| KindError::invalid(format!("removing {}", work.display()), e.to_string()))?
}

/// Mount points at or below `dir`, in mount order.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(canonical) = dir.canonicalize() else {
        return Vec::new();
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(&canonical))
        .collect()
}

fn unescape_mount_path(raw: &str) -> PathBuf {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = Vec::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let code = std::str::from_utf8(&bytes[i + 1..i + 4])
                .ok()
                .and_then(|digits| u8::from_str_radix(digits, 8).ok());
            if let Some(v) = code {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ignores_package_order_but_not_content() {
        let a = RootfsSpec::new("x", &["b", "a"]);
        let b = RootfsSpec::new("x", &["a", "b", "a"]);
        assert_eq!(a.cache_key(), b.cache_key());
        let c = RootfsSpec::new("x", &["a", "b", "c"]);
        assert_ne!(a.cache_key(), c.cache_key());
        let mut d = a.clone();
        d.suite = "trixie".into();
        assert_ne!(a.cache_key(), d.cache_key());
    }

    #[test]
    fn node_root_has_what_kind_and_the_runtime_need() {
        let node = RootfsSpec::kind_node();
        for p in [
            "systemd",
            "containerd",
            "runc",
            "iptables",
            "containernetworking-plugins",
        ] {
            assert!(node.packages.iter().any(|x| x == p), "{p} missing");
        }
        assert!(
            node.image_tag()
                .starts_with("podid-kind/root-node:bookworm-")
        );
        assert_ne!(node.cache_key(), RootfsSpec::iptables().cache_key());
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b/c"), PathBuf::from("/a b/c"));
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }
}
