//! A real kind cluster end to end: the node image (built once, then cached), a control plane and
//! two workers with Azure provider IDs, pod networking across workers, and a clean delete.
//!
//! Needs root, a running Docker daemon, `debootstrap` and `gcc`. The node's inputs come from
//! podid's toolchain (built and cached on first use, like every other podid run), and images
//! from the kind cache inside it. Missing Docker fails the test; it never skips.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::PostParams;
use podid_kind::*;
use podid_toolchain::{LogObserver, ToolchainConfig};

/// The node image's inputs, the kind CLI and the image cache, from podid's toolchain.
fn inputs() -> (NodeImageInputs, PathBuf, PathBuf) {
    let config = ToolchainConfig::from_env();
    let toolchain = podid_toolchain::ensure(&config, &LogObserver)
        .unwrap_or_else(|e| panic!("building the toolchain: {e}"));
    let kind = podid_toolchain::ensure_kind(&config, &LogObserver)
        .unwrap_or_else(|e| panic!("building the kind inputs: {e}"));
    let inputs = NodeImageInputs {
        kubernetes_version: kind.versions.kubernetes.clone(),
        kubeadm: kind.kubeadm,
        kubelet: kind.kubelet,
        kubectl: kind.kubectl,
        kube_proxy: kind.kube_proxy,
        kube_scheduler: kind.kube_scheduler,
        kube_controller_manager: kind.kube_controller_manager,
        kube_apiserver: toolchain.kube_apiserver,
        etcd: toolchain.etcd,
        coredns: kind.coredns,
        crictl: None,
        kind_module_dir: kind.kind_module_dir,
        pause: PauseInput::Source(kind.pause_source),
    };
    (inputs, kind.kind, config.cache_dir.join("kind"))
}

fn provider_id(index: usize) -> String {
    format!(
        "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/podid-kind\
         /providers/Microsoft.Compute/virtualMachineScaleSets/podid-vmss/virtualMachines/{index}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_cluster_with_two_workers_runs_pods_across_nodes() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "podid_kind=info".into()),
        )
        .with_test_writer()
        .try_init();

    let docker = match Docker::connect().await {
        Ok(d) => d,
        Err(e) => panic!("this test needs Docker: {e}"),
    };
    let (inputs, kind_binary, cache) = inputs();

    let image = ensure_node_image(&docker, &inputs, &cache, &LogProgress)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "node image {} ({}, {:.1}s, {} MB)",
        image.tag,
        if image.built { "built" } else { "cached" },
        image.took.as_secs_f64(),
        image.size / 1_000_000
    );
    let again = ensure_node_image(&docker, &inputs, &cache, &NoProgress)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !again.built,
        "an unchanged node image must come from the cache"
    );
    assert_eq!(again.tag, image.tag);
    eprintln!("node image, warm: {:.1}s", again.took.as_secs_f64());

    let work = tempfile::tempdir().unwrap();
    let kind = KindTool::detect(&docker, &kind_binary, &image.tag, &work.path().join("shim"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "kind {} ({})",
        kind.version().await.unwrap(),
        if kind.shim().is_some() {
            "behind the docker shim"
        } else {
            "direct"
        }
    );

    let run_id = format!("it{}", std::process::id());
    let mut spec = ClusterSpec::new(&run_id, image.tag.clone(), 2);
    for (i, worker) in spec.workers.iter_mut().enumerate() {
        worker.provider_id = Some(provider_id(i));
    }
    let options = CreateOptions {
        keep_on_failure: std::env::var_os("PODID_KIND_KEEP").is_some(),
        ..CreateOptions::default()
    };
    let cluster = KindCluster::create(
        &docker,
        &kind,
        &spec,
        &run_id,
        &work.path().join("cluster"),
        &options,
        &LogProgress,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let t = cluster.timings();
    eprintln!(
        "cluster {}: network {:.1}s, kind create {:.1}s, pod network {:.1}s, Ready {:.1}s later; \
         network {} ({}, gateway {}, bridge {})",
        cluster.name(),
        t.network.as_secs_f64(),
        t.create.as_secs_f64(),
        t.cni.as_secs_f64(),
        t.ready.as_secs_f64(),
        cluster.network().name,
        cluster.network().subnet,
        cluster.network().gateway,
        cluster.network().bridge,
    );

    let checked = check_cluster(&docker, &cluster, &cache).await;
    let name = cluster.name().to_owned();
    let network = cluster.network().name.clone();
    cluster.delete().await.unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = checked {
        panic!("{e}");
    }

    let containers = docker.containers(&[format!("name={name}")]).await.unwrap();
    assert!(containers.is_empty(), "containers left: {containers:?}");
    let networks = docker.networks(&[format!("name={network}")]).await.unwrap();
    assert!(networks.is_empty(), "networks left: {networks:?}");
}

/// Everything checked on the running cluster; errors are strings so the cluster is deleted
/// before the test fails.
async fn check_cluster(docker: &Docker, cluster: &KindCluster, cache: &Path) -> Result<(), String> {
    let client = cluster.client();
    if cluster.nodes().len() != 3 {
        return Err(format!("expected 3 nodes, got {:?}", cluster.nodes()));
    }

    // Every worker carries its Azure provider ID.
    let nodes: Api<Node> = Api::all(client.clone());
    for (i, worker) in cluster.workers().enumerate() {
        let node = nodes.get(&worker.name).await.map_err(|e| e.to_string())?;
        let id = node.spec.and_then(|s| s.provider_id).unwrap_or_default();
        if id != provider_id(i) {
            return Err(format!(
                "{} has providerID {id:?}, expected {:?}",
                worker.name,
                provider_id(i)
            ));
        }
    }

    // Every system pod (control plane, kube-proxy on each node, CoreDNS) becomes Ready: the
    // component images work.
    let started = Instant::now();
    wait_system_pods_ready(&client).await?;
    eprintln!(
        "kube-system pods Ready after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // A small image with bash and perl (the iptables root), loaded into the nodes.
    let root = ensure_root_image(docker, &RootfsSpec::iptables(), cache, &LogProgress)
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    cluster
        .load_images(std::slice::from_ref(&root.tag))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "kind load docker-image: {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let workers: Vec<&KindNode> = cluster.workers().collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let server = pod(
        "server",
        &workers[0].name,
        &root.tag,
        "Always",
        "exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 8080, Listen => 5, ReuseAddr => 1) or die \"listen: $!\"; while ($c = $s->accept) { print $c \"podid-kind\\n\"; close $c }'",
    );
    pods.create(&PostParams::default(), &server)
        .await
        .map_err(|e| format!("creating the server pod: {e}"))?;
    let server_ip = wait_pod(&pods, "server", |p| {
        let status = p.status.as_ref()?;
        (status.phase.as_deref() == Some("Running"))
            .then(|| status.pod_ip.clone())
            .flatten()
    })
    .await?;
    eprintln!("server pod on {} has IP {server_ip}", workers[0].name);
    if !workers[0]
        .pod_cidr
        .contains(server_ip.parse().map_err(|e| format!("{e}"))?)
    {
        return Err(format!(
            "server IP {server_ip} is outside {}'s pod range {}",
            workers[0].name, workers[0].pod_cidr
        ));
    }

    let client_pod = pod(
        "client",
        &workers[1].name,
        &root.tag,
        "Never",
        // Cluster DNS (CoreDNS behind a Service, so kube-proxy too), then the server pod.
        &format!(
            "getent hosts kubernetes.default.svc.cluster.local || exit 2; \
             for i in $(seq 1 30); do if exec 3<>/dev/tcp/{server_ip}/8080; then read -r line <&3; \
             echo \"got: $line\"; [ \"$line\" = podid-kind ] && exit 0; fi; sleep 1; done; exit 1"
        ),
    );
    pods.create(&PostParams::default(), &client_pod)
        .await
        .map_err(|e| format!("creating the client pod: {e}"))?;
    let phase = wait_pod(&pods, "client", |p| {
        let phase = p.status.as_ref()?.phase.clone()?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    })
    .await?;
    let logs = pods
        .logs("client", &Default::default())
        .await
        .unwrap_or_default();
    if phase != "Succeeded" {
        return Err(format!(
            "the client pod on {} could not reach the server on {}: {logs}",
            workers[1].name, workers[0].name
        ));
    }
    eprintln!(
        "client pod on {} reached the server: {}",
        workers[1].name,
        logs.trim()
    );
    Ok(())
}

async fn wait_system_pods_ready(client: &kube::Client) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        match pods.list(&Default::default()).await {
            Ok(list) => {
                let not_ready: Vec<String> = list
                    .items
                    .iter()
                    .filter(|p| {
                        !p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .map(|p| p.metadata.name.clone().unwrap_or_default())
                    .collect();
                // Control plane (4), kube-proxy per node (3), CoreDNS (2).
                if list.items.len() >= 9 && not_ready.is_empty() {
                    return Ok(());
                }
                last = format!("{} pods, not Ready: {not_ready:?}", list.items.len());
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("kube-system pods not Ready after 120s: {last}"))
}

fn pod(name: &str, node: &str, image: &str, restart: &str, script: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name },
        "spec": {
            "nodeName": node,
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": name,
                "image": image,
                "imagePullPolicy": "Never",
                "command": ["bash", "-c", script],
            }],
        },
    }))
    .unwrap()
}

async fn wait_pod<T>(
    pods: &Api<Pod>,
    name: &str,
    done: impl Fn(&Pod) -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    while Instant::now() < deadline {
        match pods.get(name).await {
            Ok(p) => {
                if let Some(v) = done(&p) {
                    return Ok(v);
                }
                last = format!("{:?}", p.status.map(|s| (s.phase, s.container_statuses)));
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "pod {name} did not get there in 120s; last: {last}"
    ))
}
