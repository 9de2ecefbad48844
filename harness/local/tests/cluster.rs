//! The local cluster against the real binaries from the toolchain cache (built on first use).
//! Needs root; fails with the reason when it cannot run, unless `PODID_SKIP_E2E=1` marks it
//! ignored (the same opt-out as the end-to-end suite).

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use podid_local::{
    Binaries, LocalCluster, LocalClusterConfig, NmiConfig, NmiMode, NmiStop, NodeConfig, PodSpec,
    generate_run_id,
};
use podid_netns::NetNamespace;

fn binaries() -> Result<Binaries, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the local cluster needs root (network namespaces, iptables)".into());
    }
    let tc = podid_toolchain::ensure(
        &podid_toolchain::ToolchainConfig::from_env(),
        &podid_toolchain::LogObserver,
    )
    .map_err(|e| format!("building the toolchain: {e}"))?;
    Ok(Binaries {
        etcd: tc.etcd,
        kube_apiserver: tc.kube_apiserver,
        nmi: tc.nmi,
        mic: None,
        crds: tc.crds,
    })
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let skip = std::env::var("PODID_SKIP_E2E").is_ok_and(|v| !v.is_empty() && v != "0");
    if skip {
        eprintln!("PODID_SKIP_E2E is set: the real-binary cluster test is ignored on this machine");
    }
    let trial =
        libtest_mimic::Trial::test("pods_nmi_restart_and_shutdown_leave_nothing_behind", || {
            let binaries = binaries().map_err(libtest_mimic::Failed::from)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| libtest_mimic::Failed::from(e.to_string()))?
                .block_on(pods_nmi_restart_and_shutdown_leave_nothing_behind(binaries));
            Ok(())
        })
        .with_ignored_flag(skip);
    libtest_mimic::run(&args, vec![trial]).exit_code()
}

async fn pods_nmi_restart_and_shutdown_leave_nothing_behind(binaries: Binaries) {
    let run_id = generate_run_id();
    let work_dir = std::env::temp_dir().join(format!("podid-test-{run_id}"));
    let cluster = LocalCluster::start(LocalClusterConfig {
        run_id: run_id.clone(),
        work_dir: work_dir.clone(),
        binaries,
        nodes: vec![NodeConfig {
            name: "node-a".into(),
            provider_id: "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/0".into(),
            pod_cidr_index: 9,
            extra_addresses: vec!["10.250.0.9".parse().unwrap()],
        }],
        nmi: NmiConfig::default(),
    })
    .await
    .expect("cluster starts");

    cluster
        .start_nmi(NmiMode::Standard, &[])
        .await
        .expect("NMI becomes Active");
    let rules = cluster.node_nat_rules("node-a").await.unwrap();
    assert!(rules.contains("-A PREROUTING -j aad-metadata"), "{rules}");
    assert!(rules.contains("--to-destination 127.0.0.1:2579"), "{rules}");

    cluster.ensure_namespace("t").await.unwrap();
    cluster.ensure_namespace("t").await.unwrap(); // idempotent
    let pod = cluster
        .create_pod(PodSpec {
            namespace: "t".into(),
            name: "p".into(),
            node: "node-a".into(),
            owner_replicaset: Some("rs-1".into()),
            ..PodSpec::default()
        })
        .await
        .unwrap();
    assert_eq!(pod.ip.to_string(), "10.244.9.2");
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "t");
    let live = pods.get("p").await.unwrap();
    let status = live.status.unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some("10.244.9.2"));
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let eth0 = pod
        .netns
        .netlink()
        .await
        .unwrap()
        .ipv4_addresses("eth0")
        .await
        .unwrap();
    assert_eq!(eth0, vec![pod.ip]);

    let node_a_cleaned_up = vec![NmiStop {
        node: "node-a".into(),
        removed_own_chain: true,
    }];
    let stops = cluster
        .restart_nmi(NmiMode::Standard, &[])
        .await
        .expect("NMI restarts");
    assert_eq!(
        stops, node_a_cleaned_up,
        "NMI removes its own chain on SIGTERM"
    );
    let rules = cluster.node_nat_rules("node-a").await.unwrap();
    assert!(rules.contains("-A PREROUTING -j aad-metadata"), "{rules}");

    let stops = cluster.stop_nmi().await.expect("NMI stops");
    assert_eq!(stops, node_a_cleaned_up);
    let rules = cluster.node_nat_rules("node-a").await.unwrap();
    assert!(!rules.contains("aad-metadata"), "{rules}");
    assert_eq!(
        cluster.stop_nmi().await.unwrap(),
        vec![],
        "NMI no longer runs"
    );
    cluster
        .start_nmi(NmiMode::Managed, &[])
        .await
        .expect("NMI starts again after a stop");

    let pod_ns = pod.netns.name().to_string();
    cluster.delete_pod("t", "p").await.unwrap();
    assert!(
        pods.get_opt("p").await.unwrap().is_none(),
        "grace-0 delete is immediate"
    );
    assert!(!NetNamespace::exists(&pod_ns));
    let again = cluster
        .create_pod(PodSpec {
            namespace: "t".into(),
            name: "p2".into(),
            node: "node-a".into(),
            ..PodSpec::default()
        })
        .await
        .unwrap();
    assert_eq!(again.ip, pod.ip, "a freed address is reused");

    let node_ns = cluster.node("node-a").unwrap().netns.name().to_string();
    let report = cluster.shutdown().await.unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.processes_stopped.len(), 3, "{report:?}");
    assert!(!NetNamespace::exists(&node_ns));
    assert!(!NetNamespace::exists(again.netns.name()));
    assert!(
        !std::path::Path::new("/run/podid")
            .join(format!("{run_id}.json"))
            .exists()
    );
    let _ = std::fs::remove_dir_all(work_dir);
}
