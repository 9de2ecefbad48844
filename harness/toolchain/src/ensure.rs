//! Orchestration: use overrides, reuse verified cache entries, build the rest under the cache lock.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::builder::build_component;
use crate::cache_layout::{CacheKey, CacheLayout, GoIdentity};
use crate::cache_lock::CacheLock;
use crate::component::{Artifact, Component, MODULE_LINK};
use crate::config::ToolchainConfig;
use crate::error::ToolchainError;
use crate::go_tool::{BuildEnvironment, GoTool};
use crate::manifest::{Manifest, verify_entry};
use crate::observer::{BuildEvent, BuildObserver};
use crate::override_check::{check_override, executable_problem};
use crate::pins::PAUSE_SOURCE_IN_MODULE;
use crate::preflight::preflight;
use crate::toolchain::{
    ArtifactState, ComponentStatus, ComponentVersions, KindToolchain, KindVersions, Toolchain,
};

/// Environment variable setting how many components build at once (default 1).
pub const JOBS_VAR: &str = "PODID_TOOLCHAIN_JOBS";

/// Default number of concurrent component builds. Each `go build -p 2` already keeps two cores
/// busy: a cold build of everything took 490 s one at a time and 492 s two at a time.
const DEFAULT_JOBS: usize = 1;

/// [`crate::ensure`] with an explicit environment, so tests can control PATH and the proxy.
pub(crate) fn ensure_with(
    cfg: &ToolchainConfig,
    env: &BuildEnvironment,
    jobs: usize,
    observer: &dyn BuildObserver,
) -> Result<Toolchain, ToolchainError> {
    let p = prepare(cfg, env, jobs, observer, &Component::ALL, &Artifact::ALL)?;
    Ok(Toolchain {
        etcd: p.path(Artifact::Etcd),
        kube_apiserver: p.path(Artifact::KubeApiserver),
        nmi: p.path(Artifact::Nmi),
        mic: p.path(Artifact::Mic),
        crds: p.path(Artifact::Crds),
        versions: ComponentVersions {
            etcd: p.version(Artifact::Etcd),
            kube_apiserver: p.version(Artifact::KubeApiserver),
            nmi: p.version(Artifact::Nmi),
            mic: p.version(Artifact::Mic),
            crds: p.version(Artifact::Crds),
            go: p.go,
        },
    })
}

/// [`crate::ensure_kind`] with an explicit environment.
pub(crate) fn ensure_kind_with(
    cfg: &ToolchainConfig,
    env: &BuildEnvironment,
    jobs: usize,
    observer: &dyn BuildObserver,
) -> Result<KindToolchain, ToolchainError> {
    let p = prepare(cfg, env, jobs, observer, &Component::KIND, &Artifact::KIND)?;
    // Hand out the module directories themselves rather than the entries' links to them.
    let module_dir = |component: Component| {
        let link = p.entries[&component].join(MODULE_LINK);
        std::fs::canonicalize(&link).unwrap_or(link)
    };
    let kubernetes_module_dir = module_dir(Component::KubernetesSource);
    Ok(KindToolchain {
        kubeadm: p.path(Artifact::Kubeadm),
        kubelet: p.path(Artifact::Kubelet),
        kubectl: p.path(Artifact::Kubectl),
        kube_proxy: p.path(Artifact::KubeProxy),
        kube_scheduler: p.path(Artifact::KubeScheduler),
        kube_controller_manager: p.path(Artifact::KubeControllerManager),
        kind: p.path(Artifact::Kind),
        coredns: p.path(Artifact::Coredns),
        kind_module_dir: module_dir(Component::KindSource),
        pause_source: kubernetes_module_dir.join(PAUSE_SOURCE_IN_MODULE),
        kubernetes_module_dir,
        aad_pod_identity_module_dir: module_dir(Component::AadPodIdentitySource),
        versions: KindVersions {
            kubernetes: p.version(Artifact::Kubelet),
            kind: p.version(Artifact::Kind),
            coredns: p.version(Artifact::Coredns),
            aad_pod_identity: p.version(Artifact::StandardManifest),
            go: p.go,
        },
    })
}

/// What [`prepare`] found or built: a cache entry per component, overrides per artifact.
struct Prepared {
    entries: BTreeMap<Component, PathBuf>,
    overridden: BTreeMap<Artifact, (PathBuf, String)>,
    go: Option<String>,
}

impl Prepared {
    /// The override, or the artifact inside its component's entry.
    fn path(&self, artifact: Artifact) -> PathBuf {
        match self.overridden.get(&artifact) {
            Some((path, _)) => path.clone(),
            None => self.entries[&artifact.component()].join(artifact.relative_path()),
        }
    }

    /// What the override's `--version` printed, or the pinned version.
    fn version(&self, artifact: Artifact) -> String {
        match self.overridden.get(&artifact) {
            Some((_, version)) => version.clone(),
            None => artifact.component().version().to_string(),
        }
    }
}

/// Makes `artifacts` (all produced by `components`) available: overrides are checked, verified
/// cache entries reused, and the rest built under the cache lock.
fn prepare(
    cfg: &ToolchainConfig,
    env: &BuildEnvironment,
    jobs: usize,
    observer: &dyn BuildObserver,
    components: &[Component],
    artifacts: &[Artifact],
) -> Result<Prepared, ToolchainError> {
    let layout = CacheLayout::new(&cfg.cache_dir);

    let mut overridden: BTreeMap<Artifact, (PathBuf, String)> = BTreeMap::new();
    for &artifact in artifacts {
        if let Some(path) = cfg.overrides.get(artifact) {
            let version = check_override(artifact, path)?;
            observer.event(BuildEvent::Overridden {
                artifact,
                path: path.clone(),
                version: version.clone(),
            });
            overridden.insert(artifact, (path.clone(), version));
        }
    }
    let needed: Vec<Component> = components
        .iter()
        .copied()
        .filter(|c| c.artifacts().iter().any(|a| !overridden.contains_key(a)))
        .collect();

    let go = GoTool::probe(env);
    let identity = go.as_ref().ok().map(GoIdentity::of);
    let mut entries: BTreeMap<Component, PathBuf> = BTreeMap::new();
    let mut missing = Vec::new();
    for component in needed {
        match find_entry(&layout, component, identity.as_ref()) {
            Ok(dir) => {
                observer.event(BuildEvent::Cached { component });
                entries.insert(component, dir);
            }
            Err(_) => missing.push(component),
        }
    }

    if !missing.is_empty() {
        std::fs::create_dir_all(layout.root()).map_err(ToolchainError::io(
            "creating cache directory",
            layout.root(),
        ))?;
        let go = preflight(&go, &missing, &layout.go_caches(), layout.root())?;
        let identity = GoIdentity::of(go);
        let _lock = CacheLock::acquire(&layout.lock_file(), observer)?;
        // Whoever held the lock before us may have built what we need.
        let mut to_build = VecDeque::new();
        for component in missing {
            match find_entry(&layout, component, Some(&identity)) {
                Ok(dir) => {
                    observer.event(BuildEvent::Cached { component });
                    entries.insert(component, dir);
                }
                Err(_) => to_build.push_back(component),
            }
        }
        let staging = layout.staging_root();
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .map_err(ToolchainError::io("removing abandoned builds in", &staging))?;
        }
        for (component, dir) in build_all(go, &layout, &identity, to_build, jobs, observer)? {
            entries.insert(component, dir);
        }
        // Leave only finished entries behind; the directory is empty unless a build failed.
        let _ = std::fs::remove_dir(&staging);
    }

    Ok(Prepared {
        entries,
        overridden,
        go: identity.map(|g| g.version),
    })
}

/// Builds `queue` with up to `jobs` builds at a time; stops starting new builds after a failure.
fn build_all(
    go: &GoTool,
    layout: &CacheLayout,
    identity: &GoIdentity,
    queue: VecDeque<Component>,
    jobs: usize,
    observer: &dyn BuildObserver,
) -> Result<Vec<(Component, PathBuf)>, ToolchainError> {
    let workers = jobs.clamp(1, queue.len().max(1));
    let queue = Mutex::new(queue);
    let results = Mutex::new(Vec::new());
    let failure: Mutex<Option<ToolchainError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    if failure.lock().unwrap().is_some() {
                        return;
                    }
                    let Some(component) = queue.lock().unwrap().pop_front() else {
                        return;
                    };
                    let key = CacheKey::new(component, Some(identity.clone()));
                    match build_component(go, layout, &key, observer) {
                        Ok(dir) => results.lock().unwrap().push((component, dir)),
                        Err(err) => {
                            failure.lock().unwrap().get_or_insert(err);
                            return;
                        }
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap() {
        Some(err) => Err(err),
        None => Ok(results.into_inner().unwrap()),
    }
}

/// The verified cache entry of `component`. Without a Go toolchain, any complete entry built
/// from the same pins is accepted, so a cache restored onto a Go-less machine still works.
pub(crate) fn find_entry(
    layout: &CacheLayout,
    component: Component,
    go: Option<&GoIdentity>,
) -> Result<PathBuf, String> {
    if go.is_some() || !component.depends_on_go_version() {
        let key = CacheKey::new(component, go.cloned());
        let dir = layout.entry_dir(&key);
        if !dir.exists() {
            return Err("not built yet".to_string());
        }
        return verify_entry(&dir, &key).map(|_| dir);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(layout.component_dir(component))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|dir| {
            let Ok(manifest) = Manifest::read(dir) else {
                return false;
            };
            let expected = CacheKey::new(component, manifest.key().and_then(|k| k.go));
            verify_entry(dir, &expected).is_ok()
        })
        .ok_or_else(|| "not built yet (and `go` is unavailable to tell which build fits)".into())
}

/// [`crate::status`] (`artifacts` = [`Artifact::ALL`]) or [`crate::kind_status`]
/// ([`Artifact::KIND`]) with an explicit environment.
pub(crate) fn status_with(
    cfg: &ToolchainConfig,
    env: &BuildEnvironment,
    artifacts: &[Artifact],
) -> Vec<ComponentStatus> {
    let layout = CacheLayout::new(&cfg.cache_dir);
    let identity = GoTool::probe(env).ok().map(|go| GoIdentity::of(&go));
    artifacts
        .iter()
        .map(|&artifact| {
            let component = artifact.component();
            let state = match cfg.overrides.get(artifact) {
                Some(path) => ArtifactState::Overridden {
                    path: path.clone(),
                    problem: executable_problem(path),
                },
                None => match find_entry(&layout, component, identity.as_ref()) {
                    Ok(dir) => ArtifactState::Cached {
                        path: dir.join(artifact.relative_path()),
                    },
                    Err(reason) => ArtifactState::Missing { reason },
                },
            };
            ComponentStatus {
                artifact,
                version: component.version(),
                state,
            }
        })
        .collect()
}

/// Concurrent builds from `PODID_TOOLCHAIN_JOBS`, defaulting to 1.
pub(crate) fn jobs_from_env() -> usize {
    std::env::var(JOBS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_JOBS)
}
