//! The local cluster against the real binaries from the toolchain cache (built on first use).
//! Needs root; fails with the reason when it cannot run, unless `PODID_SKIP_E2E=1` marks it
//! ignored (the same opt-out as the end-to-end suite).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use podid_local::{
    Binaries, HealthReading, LocalCluster, LocalClusterConfig, MicCloudConfig, MicConfig,
    MicSelector, NmiConfig, NmiMode, NmiStop, NodeConfig, OwnerKind, PodOwner, PodPhase, PodSpec,
    StopSignal, generate_run_id,
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
        mic: Some(tc.mic),
        crds: tc.crds,
    })
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let skip = std::env::var("PODID_SKIP_E2E").is_ok_and(|v| !v.is_empty() && v != "0");
    if skip {
        eprintln!("PODID_SKIP_E2E is set: the real-binary cluster test is ignored on this machine");
    }
    let trial = |name: &str, body: fn(Binaries) -> _| {
        libtest_mimic::Trial::test(name, move || {
            let binaries = binaries().map_err(libtest_mimic::Failed::from)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| libtest_mimic::Failed::from(e.to_string()))?
                .block_on(body(binaries));
            Ok(())
        })
        .with_ignored_flag(skip)
    };
    let trials = vec![
        trial("pods_nmi_restart_and_shutdown_leave_nothing_behind", |b| {
            Box::pin(pods_nmi_restart_and_shutdown_leave_nothing_behind(b)) as Test
        }),
        trial(
            "mic_replicas_take_over_and_survive_an_apiserver_restart",
            |b| Box::pin(mic_replicas_take_over_and_survive_an_apiserver_restart(b)) as Test,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

type Test = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

const PROVIDER_ID: &str = "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/0";

fn node(name: &str, index: u8) -> NodeConfig {
    NodeConfig {
        name: name.into(),
        provider_id: PROVIDER_ID.into(),
        pod_cidr_index: index,
        extra_addresses: vec![format!("10.250.0.{index}").parse().unwrap()],
    }
}

async fn start_cluster(binaries: Binaries, nodes: Vec<NodeConfig>) -> (LocalCluster, String) {
    let run_id = generate_run_id();
    let work_dir = std::env::temp_dir().join(format!("podid-test-{run_id}"));
    let cluster = LocalCluster::start(LocalClusterConfig {
        run_id: run_id.clone(),
        work_dir,
        binaries,
        nodes,
        nmi: NmiConfig::default(),
    })
    .await
    .expect("cluster starts");
    (cluster, run_id)
}

fn answer(reading: &HealthReading) -> (u16, String) {
    match &reading.answer {
        Ok((status, body)) => (*status, body.trim().to_string()),
        Err(e) => panic!("{} did not answer: {e}", reading.instance),
    }
}

async fn pods_nmi_restart_and_shutdown_leave_nothing_behind(binaries: Binaries) {
    let (cluster, run_id) =
        start_cluster(binaries, vec![node("node-a", 9), node("node-b", 10)]).await;
    let work_dir = std::env::temp_dir().join(format!("podid-test-{run_id}"));

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
            owner: Some(PodOwner {
                kind: OwnerKind::ReplicaSet,
                name: "rs-1".into(),
            }),
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

    // A pod in MIC's namespace, owned by a DaemonSet, still initializing.
    let pending = cluster
        .create_pod(PodSpec {
            namespace: "default".into(),
            name: "init".into(),
            node: "node-b".into(),
            owner: Some(PodOwner {
                kind: OwnerKind::DaemonSet,
                name: "ds-1".into(),
            }),
            phase: PodPhase::Pending,
            ..PodSpec::default()
        })
        .await
        .unwrap();
    let live = Api::<Pod>::namespaced(cluster.client(), "default")
        .get("init")
        .await
        .unwrap();
    let owner = &live.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("DaemonSet", "ds-1")
    );
    let status = live.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(
        status.pod_ip.as_deref(),
        Some(pending.ip.to_string().as_str())
    );

    nmi_on_one_node_stops_kills_and_starts(&cluster).await;

    let cleaned_up = vec![
        NmiStop {
            node: "node-a".into(),
            removed_own_chain: true,
        },
        NmiStop {
            node: "node-b".into(),
            removed_own_chain: true,
        },
    ];
    let stops = cluster
        .restart_nmi(NmiMode::Standard, &[])
        .await
        .expect("NMI restarts");
    assert_eq!(stops, cleaned_up, "NMI removes its own chain on SIGTERM");
    let rules = cluster.node_nat_rules("node-a").await.unwrap();
    assert!(rules.contains("-A PREROUTING -j aad-metadata"), "{rules}");

    let stops = cluster.stop_nmi().await.expect("NMI stops");
    assert_eq!(stops, cleaned_up);
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
    cluster.delete_pod("default", "init").await.unwrap();
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
    assert_eq!(report.processes_stopped.len(), 4, "{report:?}");
    assert!(!NetNamespace::exists(&node_ns));
    assert!(!NetNamespace::exists(again.netns.name()));
    assert!(
        !std::path::Path::new("/run/podid")
            .join(format!("{run_id}.json"))
            .exists()
    );
    let _ = std::fs::remove_dir_all(work_dir);
}

/// NMI on one node: SIGTERM takes its chain with it while the other node's NMI keeps serving,
/// SIGKILL leaves the chain, and a start brings back the configured NMI on that node only.
async fn nmi_on_one_node_stops_kills_and_starts(cluster: &LocalCluster) {
    let (a, b) = (vec!["node-a".to_string()], vec!["node-b".to_string()]);
    let started = Instant::now();
    let stops = cluster.stop_nmi_on(&a, StopSignal::Term).await.unwrap();
    let stopped_in = started.elapsed();
    assert_eq!(
        stops,
        [NmiStop {
            node: "node-a".into(),
            removed_own_chain: true
        }]
    );
    assert!(cluster.nmi_rules("node-a").await.unwrap().gone());
    let rules_b = cluster.nmi_rules("node-b").await.unwrap();
    assert!(rules_b.chain && rules_b.jump, "{rules_b}");
    assert!(cluster.nmi_health("node-a").await.unwrap().answer.is_err());
    assert_eq!(
        answer(&cluster.nmi_health("node-b").await.unwrap()),
        (200, "Active".into())
    );
    assert_eq!(cluster.nmi_down_nodes().await, a);

    let started_again = Instant::now();
    let all = vec!["node-a".to_string(), "node-b".to_string()];
    assert_eq!(
        cluster.start_nmi_on(&all).await.unwrap(),
        a,
        "only the stopped NMI starts"
    );
    eprintln!(
        "figures: NMI on one node stopped (SIGTERM, chain removed) in {:.2}s, started (Active, watches open) in {:.2}s",
        stopped_in.as_secs_f64(),
        started_again.elapsed().as_secs_f64()
    );
    let rules_a = cluster.nmi_rules("node-a").await.unwrap();
    assert!(rules_a.chain && rules_a.jump, "{rules_a}");
    assert_eq!(
        answer(&cluster.nmi_health("node-a").await.unwrap()),
        (200, "Active".into())
    );

    let stops = cluster.stop_nmi_on(&b, StopSignal::Kill).await.unwrap();
    assert_eq!(
        stops,
        [NmiStop {
            node: "node-b".into(),
            removed_own_chain: false
        }]
    );
    let left = cluster.nmi_rules("node-b").await.unwrap();
    assert!(
        left.chain && left.jump,
        "a killed NMI leaves its chain: {left}"
    );
    assert_eq!(cluster.nmi_down_nodes().await, b);
    assert_eq!(cluster.start_nmi_on(&b).await.unwrap(), b);
    assert_eq!(
        answer(&cluster.nmi_health("node-b").await.unwrap()),
        (200, "Active".into())
    );
    assert!(cluster.nmi_down_nodes().await.is_empty());
}

/// Two MIC replicas: one leads, the other follows; killing the leader hands the lease to the
/// follower within seconds; a restarted kube-apiserver finds NMI and MIC watching again.
async fn mic_replicas_take_over_and_survive_an_apiserver_restart(binaries: Binaries) {
    let (cluster, run_id) =
        start_cluster(binaries, vec![node("node-0", 21), node("node-1", 22)]).await;
    let work_dir = std::env::temp_dir().join(format!("podid-test-{run_id}"));
    let cloud_config = work_dir.join("azure.json");
    std::fs::write(
        &cloud_config,
        MicCloudConfig {
            tenant_id: "00000000-0000-0000-0000-000000000001",
            subscription_id: "00000000-0000-0000-0000-000000000002",
            resource_group: "rg",
            client_id: "00000000-0000-0000-0000-000000000003",
            client_secret: "unused",
            cluster_identity_client_id: None,
        }
        .render(),
    )
    .unwrap();
    cluster.start_nmi(NmiMode::Standard, &[]).await.unwrap();
    let config = MicConfig {
        replicas: 2,
        nodes: vec!["node-0".into(), "node-1".into()],
        cloud_config,
        instance: format!("podid-{run_id}"),
        extra_args: Vec::new(),
        extra_env: Vec::new(),
    };

    let started = Instant::now();
    cluster
        .run_mic(&config)
        .await
        .expect("two MIC replicas start");
    let mic_start = started.elapsed();
    let replicas = cluster.mic_replicas().await.unwrap();
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    assert!(replicas.iter().all(|r| r.up), "{replicas:?}");
    let leader = replicas
        .iter()
        .find(|r| r.leader)
        .expect("one replica leads");
    assert_eq!(replicas.iter().filter(|r| r.leader).count(), 1);
    assert_eq!(
        cluster.mic_leader().await.unwrap(),
        Some(leader.instance.clone())
    );
    let leads = cluster.mic_health(MicSelector::Leader).await.unwrap();
    assert_eq!(leads.len(), 1);
    assert_eq!(answer(&leads[0]), (200, "Active".into()));
    assert!(
        leads[0].instance.ends_with("(leader)"),
        "{}",
        leads[0].instance
    );
    let follows = cluster.mic_health(MicSelector::Followers).await.unwrap();
    assert_eq!(follows.len(), 1);
    assert_eq!(answer(&follows[0]), (200, "Not Active".into()));

    // The leader dies without a word; the follower waits out the lease and takes over.
    let old = leader.clone();
    let killed_at = Instant::now();
    let killed = cluster
        .stop_mic_replicas(MicSelector::Leader, StopSignal::Kill)
        .await
        .unwrap();
    assert_eq!(killed, [old.slot]);
    let new_leader = loop {
        let holder = cluster.mic_leader().await.unwrap();
        let answers = cluster.mic_health(MicSelector::Leader).await.unwrap();
        if holder.as_deref() != Some(old.instance.as_str())
            && answers
                .iter()
                .all(|a| matches!(&a.answer, Ok((200, b)) if b == "Active"))
        {
            break holder.unwrap();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(15),
            "the follower did not take over within 15 s (holder {holder:?}, {answers:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let takeover = killed_at.elapsed();
    assert_ne!(new_leader, old.instance);
    let states = cluster.mic_replicas().await.unwrap();
    let dead = states.iter().find(|s| s.slot == old.slot).unwrap();
    assert!(!dead.up && !dead.leader, "{dead:?}");

    // The killed replica comes back as a follower.
    assert_eq!(
        cluster.start_mic_replicas(MicSelector::All).await.unwrap(),
        [old.slot]
    );
    let follows = cluster.mic_health(MicSelector::Followers).await.unwrap();
    assert_eq!(follows.len(), 1);
    assert!(
        follows[0]
            .instance
            .starts_with(&format!("mic#{}", old.slot))
    );
    assert_eq!(answer(&follows[0]), (200, "Not Active".into()));

    // kube-apiserver goes away and comes back with the same flags, certificates and etcd.
    let restarted_at = Instant::now();
    cluster.stop_apiserver(StopSignal::Term).await.unwrap();
    let stopped_in = restarted_at.elapsed();
    assert!(!cluster.apiserver_up().await);
    cluster
        .start_apiserver()
        .await
        .expect("kube-apiserver starts again");
    let apiserver_restart = restarted_at.elapsed();
    assert!(cluster.apiserver_up().await);
    let leads = cluster.mic_health(MicSelector::Leader).await.unwrap();
    assert_eq!(answer(&leads[0]), (200, "Active".into()));
    for node in ["node-0", "node-1"] {
        assert_eq!(
            answer(&cluster.nmi_health(node).await.unwrap()),
            (200, "Active".into())
        );
    }

    // Back to one replica: the one holding the lease stays the leader.
    let holder = cluster.mic_leader().await.unwrap().unwrap();
    let one = MicConfig {
        replicas: 1,
        ..config.clone()
    };
    let started = Instant::now();
    cluster.run_mic(&one).await.unwrap();
    let one_start = started.elapsed();
    let states = cluster.mic_replicas().await.unwrap();
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].instance, holder, "the lease holder's slot runs");
    assert!(states[0].up && states[0].leader);

    eprintln!(
        "figures: MIC 2 replicas ready in {:.2}s; leader change after SIGKILL {:.2}s; kube-apiserver stop {:.2}s, restart until NMI/MIC watch again {:.2}s; MIC back to 1 replica {:.2}s",
        mic_start.as_secs_f64(),
        takeover.as_secs_f64(),
        stopped_in.as_secs_f64(),
        apiserver_restart.as_secs_f64(),
        one_start.as_secs_f64()
    );
    cluster.stop_mic().await.unwrap();
    assert!(cluster.mic_replicas().await.unwrap().is_empty());
    let report = cluster.shutdown().await.unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    if std::env::var_os("PODID_KEEP_TEST_DIR").is_none() {
        let _ = std::fs::remove_dir_all(work_dir);
    }
}
