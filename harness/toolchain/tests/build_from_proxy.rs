//! Builds NMI and MIC for real from the Go module proxy into a temporary cache, with etcd and
//! kube-apiserver overridden by tiny scripts, and checks the binaries report the pinned release.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use podid_toolchain::{
    AAD_POD_IDENTITY_VERSION, Component, LogObserver, Overrides, ToolchainConfig, ensure,
};

fn version_script(dir: &Path, name: &str, line: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\necho '{line}'\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn version_output(binary: &Path) -> String {
    // MIC refuses to start, even for --version, without its namespace.
    let out = Command::new(binary)
        .arg("--version")
        .env("MIC_POD_NAMESPACE", "default")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} --version failed",
        binary.display()
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "downloads aad-pod-identity and its dependencies (~1 GB) from the Go module proxy and \
            compiles NMI and MIC: about 2.5 min plus 1.5 min deleting the temp cache on two cores; \
            run with `cargo test -p podid-toolchain -- --ignored`"]
fn builds_nmi_and_mic_from_the_module_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ToolchainConfig {
        cache_dir: dir.path().join("cache"),
        overrides: Overrides {
            etcd: Some(version_script(dir.path(), "etcd", "etcd Version: 3.6.13")),
            kube_apiserver: Some(version_script(
                dir.path(),
                "kube-apiserver",
                "Kubernetes v1.36.3",
            )),
            nmi: None,
            mic: None,
        },
    };

    let started = Instant::now();
    let toolchain = ensure(&cfg, &LogObserver).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "cold nmi+mic build: {:.1}s",
        started.elapsed().as_secs_f64()
    );

    assert_eq!(toolchain.etcd, dir.path().join("etcd"));
    for binary in [&toolchain.nmi, &toolchain.mic] {
        assert!(binary.starts_with(&cfg.cache_dir), "{}", binary.display());
        let version = version_output(binary);
        assert!(
            version.contains(&format!("NMI Version: {AAD_POD_IDENTITY_VERSION}")),
            "{} --version printed {version:?}",
            binary.display()
        );
    }
    let crds = std::fs::read_to_string(&toolchain.crds).unwrap();
    for kind in [
        "AzureIdentity",
        "AzureIdentityBinding",
        "AzureAssignedIdentity",
    ] {
        assert!(
            crds.contains(&format!("kind: {kind}")),
            "CRD manifest lacks {kind}"
        );
    }
    let log = cfg
        .cache_dir
        .join("logs")
        .join(format!("{}.log", Component::AadPodIdentity.slug()));
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("podid: built")
    );

    let warm = Instant::now();
    let again = ensure(&cfg, &LogObserver).unwrap();
    assert_eq!(again, toolchain);
    assert!(
        warm.elapsed().as_secs() < 10,
        "warm ensure took {:?}",
        warm.elapsed()
    );
}
