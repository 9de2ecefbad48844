//! `podid toolchain`: build the pinned components, or show what is cached.

use std::process::ExitCode;

use clap::Args;
use podid_toolchain::ArtifactState;

#[derive(Debug, Args)]
pub struct ToolchainArgs {
    /// Only show what is cached, missing or overridden; build nothing.
    #[arg(long)]
    pub status: bool,
    /// Also build what a kind node image needs: kubeadm, kubelet, kubectl, kube-proxy,
    /// kube-scheduler, kube-controller-manager, kind, CoreDNS and the kind, Kubernetes and
    /// aad-pod-identity sources.
    #[arg(long)]
    pub kind: bool,
    #[command(flatten)]
    pub binaries: super::binaries::BinaryOverrides,
}

pub fn run(args: ToolchainArgs) -> ExitCode {
    let config = args.binaries.config();
    if args.status {
        println!("cache: {}", config.cache_dir.display());
        let kind = args.kind.then(|| podid_toolchain::kind_status(&config));
        for s in podid_toolchain::status(&config)
            .into_iter()
            .chain(kind.into_iter().flatten())
        {
            let state = match &s.state {
                ArtifactState::Cached { path } => format!("cached      {}", path.display()),
                ArtifactState::Overridden {
                    path,
                    problem: None,
                } => format!("overridden  {}", path.display()),
                ArtifactState::Overridden {
                    path,
                    problem: Some(p),
                } => format!("overridden  {} (unusable: {p})", path.display()),
                ArtifactState::Missing { reason } => format!("missing     {reason}"),
            };
            println!("{:<16} {state}", format!("{:?}", s.artifact));
        }
        return ExitCode::SUCCESS;
    }
    let observer = super::progress::BuildProgress::new();
    match podid_toolchain::ensure(&config, &observer) {
        Ok(tc) => {
            observer.finish();
            println!(
                "etcd            {}  {}",
                tc.versions.etcd,
                tc.etcd.display()
            );
            println!(
                "kube-apiserver  {}  {}",
                tc.versions.kube_apiserver,
                tc.kube_apiserver.display()
            );
            println!("nmi             {}  {}", tc.versions.nmi, tc.nmi.display());
            println!("mic             {}  {}", tc.versions.mic, tc.mic.display());
            println!(
                "crds            {}  {}",
                tc.versions.crds,
                tc.crds.display()
            );
            if args.kind {
                return run_kind(&config, &observer);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            observer.finish();
            super::fail(e)
        }
    }
}

/// Builds (or finds) the kind node image inputs and prints where they are.
fn run_kind(
    config: &podid_toolchain::ToolchainConfig,
    observer: &super::progress::BuildProgress,
) -> ExitCode {
    let kt = match podid_toolchain::ensure_kind(config, observer) {
        Ok(kt) => kt,
        Err(e) => {
            observer.finish();
            return super::fail(e);
        }
    };
    observer.finish();
    let v = &kt.versions;
    for (name, version, path) in [
        ("kubeadm", &v.kubernetes, &kt.kubeadm),
        ("kubelet", &v.kubernetes, &kt.kubelet),
        ("kubectl", &v.kubernetes, &kt.kubectl),
        ("kube-proxy", &v.kubernetes, &kt.kube_proxy),
        ("kube-scheduler", &v.kubernetes, &kt.kube_scheduler),
        (
            "kube-controller-manager",
            &v.kubernetes,
            &kt.kube_controller_manager,
        ),
        ("kind", &v.kind, &kt.kind),
        ("coredns", &v.coredns, &kt.coredns),
        ("kind module", &v.kind, &kt.kind_module_dir),
        ("k8s module", &v.kubernetes, &kt.kubernetes_module_dir),
        ("pause.c", &v.kubernetes, &kt.pause_source),
        (
            "aad-pod-identity module",
            &v.aad_pod_identity,
            &kt.aad_pod_identity_module_dir,
        ),
    ] {
        println!("{name:<15} {version}  {}", path.display());
    }
    ExitCode::SUCCESS
}
