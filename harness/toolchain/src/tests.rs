//! End-to-end tests of `ensure`/`status` against a scripted stand-in for the `go` command, which
//! records every invocation; the real Go build is covered by the integration test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::component::{Artifact, Component};
use crate::config::{Overrides, ToolchainConfig};
use crate::ensure::{ensure_kind_with, ensure_with, status_with};
use crate::error::ToolchainError;
use crate::go_tool::BuildEnvironment;
use crate::observer::{BuildEvent, NoopObserver, RecordingObserver};
use crate::toolchain::ArtifactState;

/// A temp dir holding a fake `go` on its own PATH, plus the cache.
struct Fixture {
    dir: tempfile::TempDir,
}

const FAKE_GO: &str = r#"#!/bin/sh
# Stand-in for `go`: answers the calls podid makes and appends each build to calls.log.
here="@HERE@"
mk() { printf '#!/bin/sh\necho "%s"\n' "$2" > "$1"; chmod +x "$1"; }
mkq() { { echo '#!/bin/sh'; echo "cat <<'EOF'"; echo "$2"; echo 'EOF'; } > "$1"; chmod +x "$1"; }
case "$1" in
  env)
    version=$(cat "$here/goversion" 2>/dev/null || echo go1.26.8)
    printf '{"GOVERSION":"%s","GOOS":"linux","GOARCH":"amd64","GOPROXY":"https://proxy.invalid,direct"}\n' "$version"
    ;;
  list)
    if [ -e "$here/proxy-down" ]; then
      echo "go: k8s.io/kubernetes@v1.36.3: reading https://proxy.invalid: 403 Forbidden" >&2
      exit 1
    fi
    ;;
  mod)
    [ -f go.mod ] || { echo "no wrapper go.mod in $PWD" >&2; exit 9; }
    case "$4" in
      sigs.k8s.io/kind@v0.33.0)
        moddir="$GOMODCACHE/fake/kind@v0.33.0"
        mkdir -p "$moddir/images/base/files/usr/local/bin" "$moddir/images/base/files/etc/containerd"
        echo "exec init" > "$moddir/images/base/files/usr/local/bin/entrypoint"
        echo "version = 2" > "$moddir/images/base/files/etc/containerd/config.toml"
        echo "kind-source" >> "$here/calls.log" ;;
      k8s.io/kubernetes@v1.36.3)
        moddir="$GOMODCACHE/fake/kubernetes@v1.36.3"
        mkdir -p "$moddir/build/pause/linux"
        echo "int main() { return 0; }" > "$moddir/build/pause/linux/pause.c"
        echo "kubernetes-source" >> "$here/calls.log" ;;
      *)
        moddir="$GOMODCACHE/fake/aad-pod-identity@v1.8.17"
        mkdir -p "$moddir/charts/aad-pod-identity/crds" "$moddir/deploy/infra/noazurejson"
        echo "kind: CustomResourceDefinition" > "$moddir/charts/aad-pod-identity/crds/crd.yaml"
        echo "kind: DaemonSet" > "$moddir/deploy/infra/noazurejson/deployment-rbac.yaml"
        echo "kind: DaemonSet" > "$moddir/deploy/infra/managed-mode-deployment.yaml"
        # Both the CRD manifest and the source link download this module; the staging
        # directory tells them apart.
        case "$PWD" in
          */aad-pod-identity-source-*) echo "aad-pod-identity-source" >> "$here/calls.log" ;;
          *) echo "crds" >> "$here/calls.log" ;;
        esac ;;
    esac
    printf '{"Path":"%s","Dir":"%s"}\n' "${4%@*}" "$moddir"
    ;;
  build)
    [ -f go.mod ] && [ -f go.sum ] && [ -f tools.go ] || { echo "wrapper missing in $PWD" >&2; exit 9; }
    env | grep -E '^(GOPROXY|GOTOOLCHAIN|CGO_ENABLED|GOFLAGS|GOMODCACHE|GOCACHE)=' | sort > "$here/build-env"
    if [ -e "$here/fail-build" ]; then echo "compile error: boom" >&2; exit 1; fi
    out=""; prev=""
    for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done
    echo "building into $out"
    sleep 0.2
    case "$*" in
      *k8s.io/kubernetes/cmd/kubelet*)
        mkq "${out}kubeadm" 'kubeadm version: &version.Info{Major:"1", Minor:"36", GitVersion:"v1.36.3"}'
        mkq "${out}kubectl" "Client Version: v1.36.3"
        for b in kubelet kube-proxy kube-scheduler kube-controller-manager; do mk "$out$b" "Kubernetes v1.36.3"; done
        echo "kube-node" >> "$here/calls.log"; exit 0 ;;
    esac
    case "$out" in
      */kind) mk "$out" "kind version 0.33.0"; echo "kind" >> "$here/calls.log" ;;
      */coredns) mk "$out" "CoreDNS-1.14.2"; echo "coredns" >> "$here/calls.log" ;;
      */) mk "${out}nmi" "NMI Version: v1.8.17"; mk "${out}mic" "MIC Version: v1.8.17"; echo "aad-pod-identity" >> "$here/calls.log" ;;
      */etcd)
        v="etcd Version: 3.6.13"; [ -e "$here/wrong-version" ] && v="etcd Version: 3.4.23"
        mk "$out" "$v"; echo "etcd" >> "$here/calls.log" ;;
      */kube-apiserver) mk "$out" "Kubernetes v1.36.3"; echo "kube-apiserver" >> "$here/calls.log" ;;
    esac
    ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"#;

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let go = bin.join("go");
        std::fs::write(
            &go,
            FAKE_GO.replace("@HERE@", &dir.path().display().to_string()),
        )
        .unwrap();
        std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn env(&self) -> BuildEnvironment {
        BuildEnvironment {
            path_var: Some(self.path("bin").into_os_string()),
            proxy_override: None,
        }
    }

    fn env_without_go(&self) -> BuildEnvironment {
        BuildEnvironment {
            path_var: Some(self.path("empty").into_os_string()),
            proxy_override: None,
        }
    }

    fn config(&self) -> ToolchainConfig {
        ToolchainConfig {
            cache_dir: self.path("cache"),
            overrides: Overrides::default(),
        }
    }

    /// Components built so far, in order.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn sorted_calls(&self) -> Vec<String> {
        let mut calls = self.calls();
        calls.sort();
        calls
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.path(name), "").unwrap();
    }

    fn script(&self, name: &str, version_line: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\necho '{version_line}'\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

const ALL_BUILT: [&str; 4] = ["aad-pod-identity", "crds", "etcd", "kube-apiserver"];

const KIND_BUILT: [&str; 6] = [
    "aad-pod-identity-source",
    "coredns",
    "kind",
    "kind-source",
    "kube-node",
    "kubernetes-source",
];

#[test]
fn cold_ensure_builds_everything_once_and_warm_ensure_reuses_it() {
    let fx = Fixture::new();
    let observer = RecordingObserver::default();
    let tc = ensure_with(&fx.config(), &fx.env(), 2, &observer).unwrap();
    assert_eq!(fx.sorted_calls(), ALL_BUILT);

    let cache = fx.path("cache");
    assert!(tc.etcd.starts_with(cache.join("etcd")), "{:?}", tc.etcd);
    assert!(tc.etcd.ends_with("bin/etcd"));
    assert!(tc.nmi.ends_with("bin/nmi") && tc.mic.ends_with("bin/mic"));
    assert!(tc.kube_apiserver.ends_with("bin/kube-apiserver"));
    assert_eq!(
        std::fs::read_to_string(&tc.crds).unwrap(),
        "kind: CustomResourceDefinition\n"
    );
    assert_eq!(tc.versions.etcd, "v3.6.13");
    assert_eq!(tc.versions.kube_apiserver, "v1.36.3");
    assert_eq!(tc.versions.nmi, "v1.8.17");
    assert_eq!(tc.versions.go.as_deref(), Some("go1.26.8"));
    for component in Component::ALL {
        let log = cache.join("logs").join(format!("{}.log", component.slug()));
        assert!(log.is_file(), "no log {log:?}");
    }
    assert!(!cache.join("tmp").join("etcd").exists());
    assert!(
        !tc.etcd
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("src")
            .exists(),
        "wrapper sources must not stay in the cache entry"
    );

    let env = std::fs::read_to_string(fx.path("build-env")).unwrap();
    assert!(env.contains("GOPROXY=https://proxy.invalid\n"), "{env}");
    assert!(
        env.contains("GOTOOLCHAIN=local\n") && env.contains("CGO_ENABLED=0\n"),
        "{env}"
    );
    assert!(
        env.contains(&format!("GOMODCACHE={}\n", cache.join("gomod").display())),
        "{env}"
    );
    assert!(
        env.contains(&format!("GOCACHE={}\n", cache.join("gobuild").display())),
        "{env}"
    );

    let events = observer.events.into_inner().unwrap();
    let started = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::Started { .. }))
        .count();
    let finished = events
        .iter()
        .filter(|e| matches!(e, BuildEvent::Finished { .. }))
        .count();
    assert_eq!((started, finished), (4, 4));
    assert!(events.iter().any(|e| matches!(
        e,
        BuildEvent::Output { component: Component::Etcd, line } if line.starts_with("building into ")
    )));

    let warm = RecordingObserver::default();
    let again = ensure_with(&fx.config(), &fx.env(), 2, &warm).unwrap();
    assert_eq!(again, tc);
    assert_eq!(fx.calls().len(), 4, "warm ensure must not build");
    let events = warm.events.into_inner().unwrap();
    assert_eq!(events.len(), 4);
    assert!(
        events
            .iter()
            .all(|e| matches!(e, BuildEvent::Cached { .. }))
    );
}

#[test]
fn tampered_binary_is_reported_and_rebuilt() {
    let fx = Fixture::new();
    let tc = ensure_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap();
    std::fs::write(&tc.etcd, "#!/bin/sh\necho evil\n").unwrap();

    let status = status_with(&fx.config(), &fx.env(), &Artifact::ALL);
    let etcd = status
        .iter()
        .find(|s| s.artifact == Artifact::Etcd)
        .unwrap();
    match &etcd.state {
        ArtifactState::Missing { reason } => {
            assert!(reason.contains("bin/etcd was modified"), "{reason}")
        }
        other => panic!("tampered etcd reported as {other:?}"),
    }
    let nmi = status.iter().find(|s| s.artifact == Artifact::Nmi).unwrap();
    assert_eq!(
        nmi.state,
        ArtifactState::Cached {
            path: tc.nmi.clone()
        }
    );

    let rebuilt = ensure_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap();
    assert_eq!(rebuilt.etcd, tc.etcd);
    assert_eq!(fx.calls().iter().filter(|c| *c == "etcd").count(), 2);
    assert_eq!(
        fx.calls().len(),
        5,
        "only etcd is rebuilt: {:?}",
        fx.calls()
    );
    let out = std::process::Command::new(&rebuilt.etcd).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "etcd Version: 3.6.13\n"
    );
}

#[test]
fn concurrent_ensures_build_each_component_once() {
    let fx = Fixture::new();
    let cfg = fx.config();
    let env = fx.env();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| ensure_with(&cfg, &env, 2, &NoopObserver)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(results[0], results[1]);
    assert_eq!(fx.sorted_calls(), ALL_BUILT);
}

#[test]
fn overrides_are_used_as_is_and_never_built() {
    let fx = Fixture::new();
    let mut cfg = fx.config();
    cfg.overrides = Overrides {
        etcd: Some(fx.script("my-etcd", "etcd Version: 3.6.99")),
        kube_apiserver: Some(fx.script("my-apiserver", "Kubernetes v1.36.9-dirty")),
        nmi: Some(fx.script("my-nmi", "patched nmi")),
        mic: Some(fx.script("my-mic", "patched mic")),
    };
    let observer = RecordingObserver::default();
    let tc = ensure_with(&cfg, &fx.env(), 2, &observer).unwrap();
    assert_eq!(fx.calls(), ["crds"], "only the CRD manifest is fetched");
    assert_eq!(tc.nmi, fx.path("my-nmi"));
    assert_eq!(tc.etcd, fx.path("my-etcd"));
    assert_eq!(tc.versions.nmi, "patched nmi");
    assert_eq!(tc.versions.kube_apiserver, "Kubernetes v1.36.9-dirty");
    let events = observer.events.into_inner().unwrap();
    assert!(events.contains(&BuildEvent::Overridden {
        artifact: Artifact::Mic,
        path: fx.path("my-mic"),
        version: "patched mic".into(),
    }));

    let status = status_with(&cfg, &fx.env(), &Artifact::ALL);
    let nmi = status.iter().find(|s| s.artifact == Artifact::Nmi).unwrap();
    assert_eq!(
        nmi.state,
        ArtifactState::Overridden {
            path: fx.path("my-nmi"),
            problem: None
        }
    );
}

#[test]
fn overriding_only_nmi_still_builds_mic() {
    let fx = Fixture::new();
    let mut cfg = fx.config();
    cfg.overrides.nmi = Some(fx.script("my-nmi", "patched nmi"));
    let tc = ensure_with(&cfg, &fx.env(), 2, &NoopObserver).unwrap();
    assert_eq!(fx.sorted_calls(), ALL_BUILT);
    assert_eq!(tc.nmi, fx.path("my-nmi"));
    assert!(tc.mic.ends_with("bin/mic") && tc.mic.is_file());
    assert_eq!(tc.versions.mic, "v1.8.17");
}

#[test]
fn broken_override_fails_before_any_build() {
    let fx = Fixture::new();
    let mut cfg = fx.config();
    cfg.overrides.kube_apiserver = Some(fx.path("does-not-exist"));
    let err = ensure_with(&cfg, &fx.env(), 2, &NoopObserver).unwrap_err();
    assert!(
        matches!(
            err,
            ToolchainError::InvalidOverride {
                var: "PODID_KUBE_APISERVER",
                ..
            }
        ),
        "{err}"
    );
    assert!(fx.calls().is_empty());
}

#[test]
fn without_go_a_cold_cache_fails_with_one_clear_error() {
    let fx = Fixture::new();
    let err = ensure_with(&fx.config(), &fx.env_without_go(), 2, &NoopObserver).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ToolchainError::Preflight { .. }), "{text}");
    assert!(text.contains("`go` was not found on PATH"), "{text}");
    assert!(text.contains("Go >= 1.26.0"), "{text}");
    for var in [
        "PODID_ETCD",
        "PODID_KUBE_APISERVER",
        "PODID_NMI",
        "PODID_MIC",
    ] {
        assert!(text.contains(var), "{var} missing from: {text}");
    }
    assert_eq!(text.matches("cannot build").count(), 1, "{text}");
}

#[test]
fn without_go_a_warm_cache_is_still_used() {
    let fx = Fixture::new();
    let built = ensure_with(&fx.config(), &fx.env(), 2, &NoopObserver).unwrap();
    let reused = ensure_with(&fx.config(), &fx.env_without_go(), 2, &NoopObserver).unwrap();
    assert_eq!(reused.etcd, built.etcd);
    assert_eq!(reused.versions.go, None);
    assert_eq!(fx.calls().len(), 4);
    let status = status_with(&fx.config(), &fx.env_without_go(), &Artifact::ALL);
    assert!(
        status
            .iter()
            .all(|s| matches!(s.state, ArtifactState::Cached { .. })),
        "{status:?}"
    );
}

#[test]
fn another_go_version_rebuilds_into_a_separate_entry() {
    let fx = Fixture::new();
    let first = ensure_with(&fx.config(), &fx.env(), 2, &NoopObserver).unwrap();
    std::fs::write(fx.path("goversion"), "go1.26.9").unwrap();
    let second = ensure_with(&fx.config(), &fx.env(), 2, &NoopObserver).unwrap();
    assert_ne!(first.etcd, second.etcd);
    assert_eq!(
        first.crds, second.crds,
        "the CRD manifest does not depend on Go"
    );
    assert_eq!(fx.calls().len(), 7, "{:?}", fx.calls());
    assert!(first.etcd.is_file(), "old entry is kept for the other Go");
}

#[test]
fn old_go_and_unreachable_proxy_are_preflight_errors() {
    let fx = Fixture::new();
    std::fs::write(fx.path("goversion"), "go1.25.4").unwrap();
    let text = ensure_with(&fx.config(), &fx.env(), 2, &NoopObserver)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("(go1.25.4) is older than go 1.26.0, which kube-apiserver v1.36.3 needs"),
        "{text}"
    );

    std::fs::remove_file(fx.path("goversion")).unwrap();
    fx.touch("proxy-down");
    let text = ensure_with(&fx.config(), &fx.env(), 2, &NoopObserver)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("the module proxy https://proxy.invalid did not serve"),
        "{text}"
    );
    assert!(text.contains("k8s.io/kubernetes@v1.36.3"), "{text}");
    assert!(text.contains("403 Forbidden"), "{text}");
    assert!(fx.calls().is_empty());
}

#[test]
fn failed_build_names_its_log_and_shows_the_tail() {
    let fx = Fixture::new();
    fx.touch("fail-build");
    let mut cfg = fx.config();
    cfg.overrides.kube_apiserver = Some(fx.script("k", "Kubernetes v1.36.3"));
    cfg.overrides.nmi = Some(fx.script("n", "nmi"));
    cfg.overrides.mic = Some(fx.script("m", "mic"));
    let err = ensure_with(&cfg, &fx.env(), 2, &NoopObserver).unwrap_err();
    let ToolchainError::BuildFailed {
        component,
        log,
        tail,
        ..
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(*component, Component::Etcd);
    assert_eq!(log, &fx.path("cache").join("logs/etcd.log"));
    assert!(tail.contains("compile error: boom"), "{tail}");
    let text = err.to_string();
    assert!(
        text.contains(&log.display().to_string()) && text.contains("boom"),
        "{text}"
    );
    let status = status_with(&cfg, &fx.env(), &Artifact::ALL);
    let etcd = status
        .iter()
        .find(|s| s.artifact == Artifact::Etcd)
        .unwrap();
    assert!(matches!(etcd.state, ArtifactState::Missing { .. }));
}

#[test]
fn status_on_an_empty_cache_lists_every_artifact_missing() {
    let fx = Fixture::new();
    let status = status_with(&fx.config(), &fx.env(), &Artifact::ALL);
    let artifacts: Vec<Artifact> = status.iter().map(|s| s.artifact).collect();
    assert_eq!(artifacts, Artifact::ALL);
    assert!(status.iter().all(|s| s.state
        == ArtifactState::Missing {
            reason: "not built yet".into()
        }));
    assert!(
        !Path::new(&fx.path("cache")).exists(),
        "status must not create the cache"
    );
}

#[test]
fn a_binary_reporting_the_wrong_version_is_not_cached() {
    let fx = Fixture::new();
    fx.touch("wrong-version");
    let err = ensure_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap_err();
    let ToolchainError::BuildFailed {
        component,
        reason,
        tail,
        ..
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(*component, Component::Etcd);
    assert!(
        reason.contains("does not mention \"etcd Version: 3.6.13\""),
        "{reason}"
    );
    assert!(tail.contains("etcd Version: 3.4.23"), "{tail}");
    let status = status_with(&fx.config(), &fx.env(), &Artifact::ALL);
    let etcd = status
        .iter()
        .find(|s| s.artifact == Artifact::Etcd)
        .unwrap();
    assert_eq!(
        etcd.state,
        ArtifactState::Missing {
            reason: "not built yet".into()
        }
    );
}

#[test]
fn the_kind_set_is_built_only_when_asked_and_then_reused() {
    let fx = Fixture::new();
    ensure_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap();
    assert_eq!(
        fx.sorted_calls(),
        ALL_BUILT,
        "ensure must not build the kind set"
    );

    let kt = ensure_kind_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap();
    let mut kind_calls = fx.calls()[ALL_BUILT.len()..].to_vec();
    kind_calls.sort();
    assert_eq!(kind_calls, KIND_BUILT);

    let cache = fx.path("cache");
    for (binary, name) in [
        (&kt.kubeadm, "kubeadm"),
        (&kt.kubelet, "kubelet"),
        (&kt.kubectl, "kubectl"),
        (&kt.kube_proxy, "kube-proxy"),
        (&kt.kube_scheduler, "kube-scheduler"),
        (&kt.kube_controller_manager, "kube-controller-manager"),
    ] {
        assert!(binary.starts_with(cache.join("kube-node")), "{binary:?}");
        assert!(binary.ends_with(format!("bin/{name}")) && binary.is_file());
    }
    assert!(kt.kind.starts_with(cache.join("kind-cli")) && kt.kind.is_file());
    assert!(kt.coredns.starts_with(cache.join("coredns")) && kt.coredns.is_file());

    let gomod = std::fs::canonicalize(cache.join("gomod")).unwrap();
    assert_eq!(kt.kind_module_dir, gomod.join("fake/kind@v0.33.0"));
    assert!(
        kt.kind_module_dir
            .join("images/base/files/usr/local/bin/entrypoint")
            .is_file()
    );
    assert_eq!(
        kt.kubernetes_module_dir,
        gomod.join("fake/kubernetes@v1.36.3")
    );
    assert_eq!(
        kt.pause_source,
        kt.kubernetes_module_dir.join("build/pause/linux/pause.c")
    );
    assert!(kt.pause_source.is_file());
    assert_eq!(
        kt.aad_pod_identity_module_dir,
        gomod.join("fake/aad-pod-identity@v1.8.17")
    );
    assert!(
        kt.aad_pod_identity_module_dir
            .join("deploy/infra/noazurejson/deployment-rbac.yaml")
            .is_file()
    );
    let link = std::fs::read_dir(cache.join("kind-source"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("module");
    let target = std::fs::read_link(&link).unwrap();
    assert!(target.is_relative(), "{target:?}");

    assert_eq!(kt.versions.kubernetes, "v1.36.3");
    assert_eq!(kt.versions.kind, "v0.33.0");
    assert_eq!(kt.versions.coredns, "v1.14.2");
    assert_eq!(kt.versions.aad_pod_identity, "v1.8.17");
    assert_eq!(kt.versions.go.as_deref(), Some("go1.26.8"));

    let warm = RecordingObserver::default();
    assert_eq!(
        ensure_kind_with(&fx.config(), &fx.env(), 1, &warm).unwrap(),
        kt
    );
    assert_eq!(fx.calls().len(), ALL_BUILT.len() + KIND_BUILT.len());
    let events = warm.events.into_inner().unwrap();
    assert_eq!(events.len(), KIND_BUILT.len());
    assert!(
        events
            .iter()
            .all(|e| matches!(e, BuildEvent::Cached { .. }))
    );
}

#[test]
fn kind_status_reports_the_built_set_cached() {
    let fx = Fixture::new();
    let kt = ensure_kind_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap();
    let status = status_with(&fx.config(), &fx.env(), &Artifact::KIND);
    assert!(
        status
            .iter()
            .all(|s| matches!(s.state, ArtifactState::Cached { .. })),
        "{status:?}"
    );
    let out = std::process::Command::new(&kt.kubeadm)
        .arg("version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("GitVersion:\"v1.36.3\""));
}

#[test]
fn a_cleaned_module_cache_is_downloaded_and_linked_again() {
    let fx = Fixture::new();
    let kt = ensure_kind_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap();
    std::fs::remove_dir_all(&kt.kind_module_dir).unwrap();

    let status = status_with(&fx.config(), &fx.env(), &Artifact::KIND);
    let entrypoint = status
        .iter()
        .find(|s| s.artifact == Artifact::KindEntrypoint)
        .unwrap();
    match &entrypoint.state {
        ArtifactState::Missing { reason } => assert!(reason.contains("unreadable"), "{reason}"),
        other => panic!("entrypoint without its module reported as {other:?}"),
    }

    let again = ensure_kind_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap();
    assert_eq!(again, kt);
    assert!(again.kind_module_dir.join("images/base/files").is_dir());
    assert_eq!(
        fx.calls().iter().filter(|c| *c == "kind-source").count(),
        2,
        "{:?}",
        fx.calls()
    );
    assert_eq!(fx.calls().len(), KIND_BUILT.len() + 1, "{:?}", fx.calls());
}

#[test]
fn a_moved_cache_still_finds_its_sources_without_go() {
    let fx = Fixture::new();
    ensure_kind_with(&fx.config(), &fx.env(), 1, &NoopObserver).unwrap();
    std::fs::rename(fx.path("cache"), fx.path("moved")).unwrap();
    let mut cfg = fx.config();
    cfg.cache_dir = fx.path("moved");
    let kt = ensure_kind_with(&cfg, &fx.env_without_go(), 1, &NoopObserver).unwrap();
    assert_eq!(fx.calls().len(), KIND_BUILT.len(), "nothing is rebuilt");
    assert!(
        kt.pause_source
            .starts_with(std::fs::canonicalize(fx.path("moved")).unwrap())
    );
    assert!(kt.pause_source.is_file());
    assert_eq!(kt.versions.go, None);
}
