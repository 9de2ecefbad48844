//! The pinned upstream versions and the wrapper Go modules podid builds them from.
//!
//! The wrapper modules live in `fixtures/toolchain/` and are embedded at compile time, so an
//! installed `podid` binary can build the toolchain outside the repository.

/// etcd release built from `go.etcd.io/etcd/server/v3`.
pub const ETCD_VERSION: &str = "v3.6.13";
/// Kubernetes release kube-apiserver is built from (`k8s.io/kubernetes`).
pub const KUBERNETES_VERSION: &str = "v1.36.3";
/// aad-pod-identity release NMI, MIC and the CRD manifest come from.
pub const AAD_POD_IDENTITY_VERSION: &str = "v1.8.17";
/// Upstream commit of the aad-pod-identity tag, stamped into the NMI/MIC version output.
pub const AAD_POD_IDENTITY_COMMIT: &str = "d17ea6a41aed5284fda895d6d48f50cc5f9f175f";
/// kind release the `kind` CLI and the node image's base files come from (`sigs.k8s.io/kind`).
pub const KIND_VERSION: &str = "v0.33.0";
/// CoreDNS release the cluster DNS binary of a kind node is built from.
pub const COREDNS_VERSION: &str = "v1.14.2";
/// Upstream commit of the CoreDNS tag, stamped into `coredns -version` like upstream's release builds.
pub const COREDNS_COMMIT: &str = "dd1df4f5db93767a44e37638df44969503b320d2";

/// Bumped whenever build flags or the cache layout change, so old cache entries are rebuilt.
pub const RECIPE_REVISION: u32 = 1;

/// Fixed build date stamped into version variables, keeping builds reproducible.
pub const BUILD_DATE: &str = "1970-01-01T00:00:00Z";

/// Path of the CRD manifest inside the aad-pod-identity module.
pub const CRD_MANIFEST_IN_MODULE: &str = "charts/aad-pod-identity/crds/crd.yaml";

/// Path of the pause container's source inside the Kubernetes module.
pub const PAUSE_SOURCE_IN_MODULE: &str = "build/pause/linux/pause.c";

/// The three files of one wrapper Go module.
#[derive(Debug, Clone, Copy)]
pub struct WrapperModule {
    /// Directory name under `fixtures/toolchain/`.
    pub name: &'static str,
    /// Contents of `go.mod`.
    pub go_mod: &'static str,
    /// Contents of `go.sum`; its hash is part of the cache key so a bumped pin rebuilds.
    pub go_sum: &'static str,
    /// Contents of `tools.go`, which imports the main packages so `go.mod` stays complete.
    pub tools_go: &'static str,
}

/// Wrapper module pinning `go.etcd.io/etcd/server/v3`.
pub const ETCD_WRAPPER: WrapperModule = WrapperModule {
    name: "etcd",
    go_mod: include_str!("../../../fixtures/toolchain/etcd/go.mod"),
    go_sum: include_str!("../../../fixtures/toolchain/etcd/go.sum"),
    tools_go: include_str!("../../../fixtures/toolchain/etcd/tools.go"),
};

/// Wrapper module pinning `k8s.io/kubernetes` with every staging module replaced by its published version.
pub const KUBE_APISERVER_WRAPPER: WrapperModule = WrapperModule {
    name: "kube-apiserver",
    go_mod: include_str!("../../../fixtures/toolchain/kube-apiserver/go.mod"),
    go_sum: include_str!("../../../fixtures/toolchain/kube-apiserver/go.sum"),
    tools_go: include_str!("../../../fixtures/toolchain/kube-apiserver/tools.go"),
};

/// Wrapper module pinning `github.com/Azure/aad-pod-identity`.
pub const AAD_POD_IDENTITY_WRAPPER: WrapperModule = WrapperModule {
    name: "aad-pod-identity",
    go_mod: include_str!("../../../fixtures/toolchain/aad-pod-identity/go.mod"),
    go_sum: include_str!("../../../fixtures/toolchain/aad-pod-identity/go.sum"),
    tools_go: include_str!("../../../fixtures/toolchain/aad-pod-identity/tools.go"),
};

/// Wrapper module pinning `k8s.io/kubernetes` for a kind node's binaries (kubeadm, kubelet,
/// kubectl, kube-proxy, kube-scheduler, kube-controller-manager); same pins as kube-apiserver's.
pub const KUBE_NODE_WRAPPER: WrapperModule = WrapperModule {
    name: "kube-node",
    go_mod: include_str!("../../../fixtures/toolchain/kube-node/go.mod"),
    go_sum: include_str!("../../../fixtures/toolchain/kube-node/go.sum"),
    tools_go: include_str!("../../../fixtures/toolchain/kube-node/tools.go"),
};

/// Wrapper module pinning `sigs.k8s.io/kind`.
pub const KIND_WRAPPER: WrapperModule = WrapperModule {
    name: "kind",
    go_mod: include_str!("../../../fixtures/toolchain/kind/go.mod"),
    go_sum: include_str!("../../../fixtures/toolchain/kind/go.sum"),
    tools_go: include_str!("../../../fixtures/toolchain/kind/tools.go"),
};

/// Wrapper module pinning `github.com/coredns/coredns`.
pub const COREDNS_WRAPPER: WrapperModule = WrapperModule {
    name: "coredns",
    go_mod: include_str!("../../../fixtures/toolchain/coredns/go.mod"),
    go_sum: include_str!("../../../fixtures/toolchain/coredns/go.sum"),
    tools_go: include_str!("../../../fixtures/toolchain/coredns/tools.go"),
};

impl WrapperModule {
    /// The `go` directive of the wrapper's go.mod: the oldest Go that can build it.
    pub fn required_go(&self) -> Option<&'static str> {
        self.go_mod
            .lines()
            .find_map(|line| line.trim().strip_prefix("go "))
            .map(str::trim)
    }

    /// The version the wrapper's go.mod requires for `module`, if any.
    pub fn required_version(&self, module: &str) -> Option<&'static str> {
        self.go_mod.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            let first = words.next()?;
            let (path, version) = if first == "require" {
                (words.next()?, words.next()?)
            } else {
                (first, words.next()?)
            };
            (path == module && version.starts_with('v')).then_some(version)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_pin_the_versions_podid_claims() {
        assert_eq!(
            ETCD_WRAPPER.required_version("go.etcd.io/etcd/server/v3"),
            Some(ETCD_VERSION)
        );
        assert_eq!(
            KUBE_APISERVER_WRAPPER.required_version("k8s.io/kubernetes"),
            Some(KUBERNETES_VERSION)
        );
        assert_eq!(
            AAD_POD_IDENTITY_WRAPPER.required_version("github.com/Azure/aad-pod-identity"),
            Some(AAD_POD_IDENTITY_VERSION)
        );
        assert_eq!(
            KUBE_NODE_WRAPPER.required_version("k8s.io/kubernetes"),
            Some(KUBERNETES_VERSION)
        );
        assert_eq!(
            KIND_WRAPPER.required_version("sigs.k8s.io/kind"),
            Some(KIND_VERSION)
        );
        assert_eq!(
            COREDNS_WRAPPER.required_version("github.com/coredns/coredns"),
            Some(COREDNS_VERSION)
        );
    }

    #[test]
    fn go_sums_contain_the_pinned_modules() {
        let needle = format!("k8s.io/kubernetes {KUBERNETES_VERSION} h1:");
        assert!(KUBE_APISERVER_WRAPPER.go_sum.contains(&needle));
        let needle = format!("go.etcd.io/etcd/server/v3 {ETCD_VERSION} h1:");
        assert!(ETCD_WRAPPER.go_sum.contains(&needle));
        let needle = format!("github.com/Azure/aad-pod-identity {AAD_POD_IDENTITY_VERSION} h1:");
        assert!(AAD_POD_IDENTITY_WRAPPER.go_sum.contains(&needle));
        let needle = format!("k8s.io/kubernetes {KUBERNETES_VERSION} h1:");
        assert!(KUBE_NODE_WRAPPER.go_sum.contains(&needle));
        let needle = format!("sigs.k8s.io/kind {KIND_VERSION} h1:");
        assert!(KIND_WRAPPER.go_sum.contains(&needle));
        let needle = format!("github.com/coredns/coredns {COREDNS_VERSION} h1:");
        assert!(COREDNS_WRAPPER.go_sum.contains(&needle));
    }

    #[test]
    fn kube_node_pins_the_same_staging_modules_and_imports_every_node_binary() {
        let replaces = |w: &WrapperModule| -> Vec<&'static str> {
            let go_mod = w.go_mod;
            go_mod
                .lines()
                .filter(|l| l.starts_with("replace "))
                .collect()
        };
        assert_eq!(
            replaces(&KUBE_NODE_WRAPPER),
            replaces(&KUBE_APISERVER_WRAPPER)
        );
        assert_eq!(
            KUBE_NODE_WRAPPER.required_go(),
            KUBE_APISERVER_WRAPPER.required_go()
        );
        for cmd in [
            "kubeadm",
            "kubelet",
            "kubectl",
            "kube-proxy",
            "kube-scheduler",
            "kube-controller-manager",
        ] {
            let import = format!("_ \"k8s.io/kubernetes/cmd/{cmd}\"");
            assert!(KUBE_NODE_WRAPPER.tools_go.contains(&import), "{import}");
        }
    }

    #[test]
    fn kube_apiserver_replaces_staging_modules_with_the_matching_minor() {
        let staging = format!("v0.{}", &KUBERNETES_VERSION[3..]);
        let replaces: Vec<&str> = KUBE_APISERVER_WRAPPER
            .go_mod
            .lines()
            .filter(|l| l.starts_with("replace k8s.io/"))
            .collect();
        assert!(replaces.len() >= 31, "only {} replaces", replaces.len());
        for line in replaces {
            assert!(line.ends_with(&staging), "{line} does not pin {staging}");
        }
    }

    #[test]
    fn go_directives_are_read() {
        assert_eq!(KUBE_APISERVER_WRAPPER.required_go(), Some("1.26.0"));
        assert_eq!(ETCD_WRAPPER.required_go(), Some("1.25.0"));
        assert_eq!(AAD_POD_IDENTITY_WRAPPER.required_go(), Some("1.18"));
        assert_eq!(KUBE_NODE_WRAPPER.required_go(), Some("1.26.0"));
        assert_eq!(KIND_WRAPPER.required_go(), Some("1.17"));
        assert_eq!(COREDNS_WRAPPER.required_go(), Some("1.25.0"));
    }
}
