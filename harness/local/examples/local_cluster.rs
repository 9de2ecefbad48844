//! A two-node local cluster running the real NMI, end to end, as root:
//!
//! ```text
//! PODID_BIN_DIR=<dir with etcd, kube-apiserver, nmi> PODID_CRDS=<aad-pod-identity crd.yaml> \
//!     cargo run -p podid-local --example local_cluster
//! ```
//!
//! It starts etcd + kube-apiserver, two node namespaces, a stand-in IMDS at 169.254.169.254:80
//! inside node 1, NMI in managed mode, an AzureIdentity + AzureIdentityBinding (selector `demo`)
//! in namespace `demo`, then asks for a token with curl from inside a labelled pod (expects 200
//! with the stand-in's token) and an unlabelled pod (expects 404 `no azure identity found`),
//! prints the timings and shuts everything down. `PODID_EXAMPLE_PANIC=1` panics after the pods
//! exist, to show that dropping the cluster still tears everything down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use podid_local::{
    Binaries, LocalCluster, LocalClusterConfig, LocalPod, METADATA_IP, NmiConfig, NmiMode,
    NodeConfig, PodSpec, generate_run_id,
};

const CLIENT_ID: &str = "00000000-0000-0000-0000-0000000000aa";
const TOKEN_URL: &str =
    "http://169.254.169.254/metadata/identity/oauth2/token?resource=https://storage.azure.com/";

type Seen = Arc<Mutex<Vec<String>>>;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client::client::builder=off".into()),
        )
        .init();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let bin_dir = PathBuf::from(std::env::var("PODID_BIN_DIR").map_err(|_| "set PODID_BIN_DIR")?);
    let crds = PathBuf::from(std::env::var("PODID_CRDS").map_err(|_| "set PODID_CRDS")?);
    let run_id = generate_run_id();
    let work_dir = std::env::current_dir()?
        .join("target/podid/runs")
        .join(&run_id);
    let node = |name: &str, index: u8| NodeConfig {
        name: name.into(),
        provider_id: format!(
            "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/podid/providers/Microsoft.Compute/virtualMachineScaleSets/podid-vmss/virtualMachines/{}",
            index - 1
        ),
        pod_cidr_index: index,
        extra_addresses: vec![],
    };
    let config = LocalClusterConfig {
        run_id: run_id.clone(),
        work_dir: work_dir.clone(),
        binaries: Binaries {
            etcd: bin_dir.join("etcd"),
            kube_apiserver: bin_dir.join("kube-apiserver"),
            nmi: bin_dir.join("nmi"),
            mic: None,
            crds,
        },
        nodes: vec![node("node-1", 1), node("node-2", 2)],
        nmi: NmiConfig::default(),
    };

    println!("run {run_id}, work dir {}", work_dir.display());
    let started = Instant::now();
    let cluster = LocalCluster::start(config).await?;
    let t = cluster.timings();
    println!(
        "etcd ready {:?}, apiserver ready {:?}, CRDs established {:?}, nodes {:?} (total {:?})",
        t.etcd_ready,
        t.apiserver_ready,
        t.crds_established,
        t.nodes_ready,
        started.elapsed()
    );

    let seen: Seen = Arc::default();
    let node1 = cluster.node("node-1").expect("configured");
    let listener = node1.netns.bind_tcp(SocketAddr::from((METADATA_IP, 80)))?;
    listener.set_nonblocking(true)?;
    let app = axum::Router::new()
        .route("/metadata/identity/oauth2/token", get(imds_token))
        .with_state(seen.clone());
    tokio::spawn(axum::serve(tokio::net::TcpListener::from_std(listener)?, app).into_future());

    let nmi_started = Instant::now();
    cluster.start_nmi(NmiMode::Managed, &[]).await?;
    println!("NMI Active on both nodes after {:?}", nmi_started.elapsed());

    cluster.ensure_namespace("demo").await?;
    create_identity_and_binding(&cluster.client()).await?;

    let pod_started = Instant::now();
    let labelled = cluster
        .create_pod(PodSpec {
            namespace: "demo".into(),
            name: "labelled".into(),
            node: "node-1".into(),
            labels: [("aadpodidbinding".to_string(), "demo".to_string())].into(),
            ..PodSpec::default()
        })
        .await?;
    let plain = cluster
        .create_pod(PodSpec {
            namespace: "demo".into(),
            name: "plain".into(),
            node: "node-1".into(),
            ..PodSpec::default()
        })
        .await?;
    println!(
        "pods: {} at {}, {} at {}",
        labelled.name, labelled.ip, plain.name, plain.ip
    );

    if std::env::var("PODID_EXAMPLE_PANIC").as_deref() == Ok("1") {
        panic!("PODID_EXAMPLE_PANIC=1: panicking with the cluster running");
    }

    // NMI's pod informer may lag the status patch by a moment: retry until 200 or 20 s.
    let (status, body) = loop {
        let (status, body) = curl_token(&cluster, &labelled).await?;
        if status == 200 || pod_started.elapsed() > Duration::from_secs(20) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("labelled pod: HTTP {status} {body}");
    println!("pod create -> first token: {:?}", pod_started.elapsed());
    assert_eq!(status, 200, "the labelled pod must get a token");
    assert!(body.contains(&format!("token-for-{CLIENT_ID}")), "{body}");
    assert!(
        seen.lock().unwrap().iter().any(|c| c == CLIENT_ID),
        "the IMDS stand-in must have seen client_id {CLIENT_ID}"
    );

    let (status, body) = curl_token(&cluster, &plain).await?;
    println!("unlabelled pod: HTTP {status} {body}");
    assert_eq!(status, 404);
    assert!(body.contains("no azure identity found"), "{body}");

    let restart_started = Instant::now();
    let stops = cluster.restart_nmi(NmiMode::Managed, &[]).await?;
    println!(
        "NMI restart (stop with chain cleanup + start + Active): {:?}; stops {stops:?}",
        restart_started.elapsed()
    );
    assert!(
        stops.iter().all(|s| s.removed_own_chain),
        "NMI must remove its own iptables chain on SIGTERM: {stops:?}"
    );
    let (status, _) = curl_token(&cluster, &labelled).await?;
    println!("labelled pod after NMI restart: HTTP {status}");
    assert_eq!(status, 200);

    let report = cluster.shutdown().await?;
    println!(
        "shutdown: stopped {:?}; deleted {:?}; errors {:?}",
        report.processes_stopped, report.namespaces_deleted, report.errors
    );
    assert!(report.errors.is_empty());
    show_nothing_left(&run_id, &report.processes_stopped).await?;
    Ok(())
}

/// The IMDS stand-in: a fixed token naming the client_id it was asked for.
async fn imds_token(
    State(seen): State<Seen>,
    Query(query): Query<HashMap<String, String>>,
) -> axum::Json<serde_json::Value> {
    let client_id = query.get("client_id").cloned().unwrap_or_default();
    seen.lock().unwrap().push(client_id.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    axum::Json(serde_json::json!({
        "access_token": format!("token-for-{client_id}"),
        "refresh_token": "",
        "expires_in": "3599",
        "expires_on": (now + 3599).to_string(),
        "not_before": now.to_string(),
        "resource": query.get("resource").cloned().unwrap_or_default(),
        "token_type": "Bearer",
        "client_id": client_id,
    }))
}

async fn create_identity_and_binding(client: &kube::Client) -> Result<(), kube::Error> {
    let resource = |kind: &str, plural: &str| {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("aadpodidentity.k8s.io", "v1", kind),
            plural,
        )
    };
    let identity_resource = resource("AzureIdentity", "azureidentities");
    let identity: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentity",
        "metadata": {"name": "demo-identity", "namespace": "demo"},
        "spec": {
            "type": 0,
            "clientID": CLIENT_ID,
            "resourceID": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/podid/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo-identity",
        }
    }))
    .expect("static object");
    Api::<DynamicObject>::namespaced_with(client.clone(), "demo", &identity_resource)
        .create(&PostParams::default(), &identity)
        .await?;
    let binding_resource = resource("AzureIdentityBinding", "azureidentitybindings");
    let binding: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "aadpodidentity.k8s.io/v1",
        "kind": "AzureIdentityBinding",
        "metadata": {"name": "demo-binding", "namespace": "demo"},
        "spec": {"azureIdentity": "demo-identity", "selector": "demo"}
    }))
    .expect("static object");
    Api::<DynamicObject>::namespaced_with(client.clone(), "demo", &binding_resource)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

/// Runs curl inside the pod's namespace; returns the HTTP status and body.
async fn curl_token(
    cluster: &LocalCluster,
    pod: &LocalPod,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let out = cluster
        .pod_command(pod, Path::new("curl"))
        .args([
            "-s",
            "-m",
            "10",
            "-w",
            "\n%{http_code}",
            "-H",
            "Metadata:true",
            TOKEN_URL,
        ])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}

/// Prints what `ip netns list`, `ps` and `iptables-save` show for this run: nothing.
async fn show_nothing_left(
    run_id: &str,
    stopped: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
    let run = |program: &'static str, args: &'static [&'static str]| async move {
        let out = tokio::process::Command::new(program)
            .args(args)
            .output()
            .await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let netns = run("ip", &["netns", "list"]).await?;
    let ours: Vec<&str> = netns.lines().filter(|l| l.contains(run_id)).collect();
    println!("ip netns list (this run): {ours:?}");
    let ps = run("ps", &["-eo", "pid,comm"]).await?;
    let procs: Vec<&str> = ps
        .lines()
        .filter(|l| l.ends_with(" etcd") || l.ends_with(" kube-apiserver") || l.ends_with(" nmi"))
        .collect();
    println!("ps (etcd, kube-apiserver, nmi of any run): {procs:?}");
    // Our own children, by pid ("name (pid N)"): none may still exist.
    let alive: Vec<&String> = stopped
        .iter()
        .filter(|s| {
            let pid = s.rsplit_once("pid ").map(|(_, p)| p.trim_end_matches(')'));
            pid.is_some_and(|p| Path::new("/proc").join(p).exists())
        })
        .collect();
    println!("our stopped processes still alive: {alive:?}");
    let rules = run("iptables-save", &[]).await?;
    let nmi_rules: Vec<&str> = rules
        .lines()
        .filter(|l| l.contains("aad-metadata"))
        .collect();
    println!("iptables-save (root namespace) aad-metadata lines: {nmi_rules:?}");
    assert!(ours.is_empty() && alive.is_empty() && nmi_rules.is_empty());
    Ok(())
}
