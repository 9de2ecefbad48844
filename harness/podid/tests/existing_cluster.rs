//! The existing-cluster provider's first steps, against what they meet for real:
//!
//! - preflight refuses a missing or empty kubeconfig, an unknown context and an unreachable
//!   server, each in one line (no cluster needed);
//! - against the local cluster's real kube-apiserver (no kubelet or controllers: nothing is
//!   scheduled, so discovery reads specs and every ready count is 0): discovery tells apart NMI
//!   and MIC installed like the AKS add-on, upstream's Helm chart, upstream's manifests and
//!   podid, and finds nothing where nothing runs; a server-side dry run of podid's install plan
//!   passes and creates nothing; a service account without RBAC connects but may not install,
//!   and is told what it lacks, while the admin may.
//!
//! The cluster trial needs root and the toolchain (built on first use); `PODID_SKIP_E2E=1`
//! marks it ignored. The aad-pod-identity module is found in the toolchain's Go module cache,
//! or given with `PODID_AAD_POD_IDENTITY_DIR`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::Kubeconfig;
use podid::provider::existing::discovery::{Component, Discovery, Source, discover};
use podid::provider::existing::install::{
    DryRunOutcome, InstallPlan, dry_run, install, install_request, uninstall,
};
use podid::provider::existing::preflight::{PreflightError, connect, install_permission};
use podid_incluster::{ApplyOptions, CloudAccess, Manifest, MicCredentials, Mode, RemoveOptions};
use podid_local::{Binaries, LocalCluster, LocalClusterConfig, NmiConfig, NodeConfig};
use serde_json::{Value, json};

use podid_toolchain::AAD_POD_IDENTITY_DIR_VAR as MODULE_DIR_VAR;

fn main() -> std::process::ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("podid=info")),
        )
        .with_test_writer()
        .try_init();
    let args = libtest_mimic::Arguments::from_args();
    let skip = std::env::var("PODID_SKIP_E2E").is_ok_and(|v| !v.is_empty() && v != "0");
    if skip {
        eprintln!("PODID_SKIP_E2E is set: the real-apiserver trial is ignored on this machine");
    }
    let trials = vec![
        libtest_mimic::Trial::test("preflight_refuses_what_it_cannot_use", || {
            runtime()?.block_on(preflight_refuses_what_it_cannot_use());
            Ok(())
        }),
        libtest_mimic::Trial::test(
            "discovery_dry_run_and_permissions_on_a_real_apiserver",
            || {
                let setup = setup().map_err(libtest_mimic::Failed::from)?;
                runtime()?.block_on(discovery_dry_run_and_permissions(setup));
                Ok(())
            },
        )
        .with_ignored_flag(skip),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

fn runtime() -> Result<tokio::runtime::Runtime, libtest_mimic::Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| libtest_mimic::Failed::from(e.to_string()))
}

struct Setup {
    binaries: Binaries,
    module_dir: PathBuf,
}

fn setup() -> Result<Setup, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("the local cluster needs root (network namespaces, iptables)".into());
    }
    let config = podid_toolchain::ToolchainConfig::from_env();
    let tc = podid_toolchain::ensure(&config, &podid_toolchain::LogObserver)
        .map_err(|e| format!("building the toolchain: {e}"))?;
    let module_dir = config.aad_pod_identity_module_dir();
    if !module_dir.is_dir() {
        return Err(format!(
            "the aad-pod-identity module is not at {} (`podid toolchain --kind` downloads it; \
             set {MODULE_DIR_VAR} to its directory)",
            module_dir.display()
        ));
    }
    Ok(Setup {
        binaries: Binaries {
            etcd: tc.etcd,
            kube_apiserver: tc.kube_apiserver,
            nmi: tc.nmi,
            mic: None,
            crds: tc.crds,
        },
        module_dir,
    })
}

/// A directory of this test run's files.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "podid-existing-{name}-{}-{}",
        std::process::id(),
        podid_local::generate_run_id()
    ));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a kubeconfig");
    path
}

/// A kubeconfig with one cluster at `server`, one token user and the given contexts.
fn kubeconfig(
    server: &str,
    ca_data: Option<&str>,
    token: &str,
    contexts: &[&str],
    current: Option<&str>,
) -> String {
    let mut cluster = json!({ "server": server });
    if let Some(ca) = ca_data {
        cluster["certificate-authority-data"] = json!(ca);
    }
    let mut config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "c", "cluster": cluster }],
        "users": [{ "name": "u", "user": { "token": token } }],
        "contexts": contexts.iter().map(|name| json!({
            "name": name, "context": { "cluster": "c", "user": "u" }
        })).collect::<Vec<_>>(),
    });
    if let Some(current) = current {
        config["current-context"] = json!(current);
    }
    serde_json::to_string_pretty(&config).expect("JSON is YAML")
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    listener.local_addr().expect("its address").port()
}

fn assert_one_line(error: &PreflightError) -> String {
    let text = error.to_string();
    assert!(!text.contains('\n'), "one line: {text:?}");
    text
}

async fn preflight_refuses_what_it_cannot_use() {
    let dir = scratch_dir("preflight");

    let missing = dir.join("no-such-kubeconfig");
    let err = connect(Some(&missing), None).await.unwrap_err();
    assert!(
        matches!(err, PreflightError::KubeconfigMissing { .. }),
        "{err:?}"
    );
    assert_eq!(
        assert_one_line(&err),
        format!(
            "kubeconfig {} does not exist; pass --kubeconfig PATH or set KUBECONFIG to the cluster's kubeconfig",
            missing.display()
        )
    );

    for (name, text) in [
        ("zero-bytes", ""),
        ("no-contexts", "apiVersion: v1\nkind: Config\n"),
    ] {
        let path = write(&dir, name, text);
        let err = connect(Some(&path), None).await.unwrap_err();
        assert!(
            matches!(err, PreflightError::NoContexts { .. }),
            "{name}: {err:?}"
        );
        assert!(
            assert_one_line(&err)
                .starts_with(&format!("kubeconfig {} has no contexts;", path.display())),
            "{err}"
        );
    }

    let server = format!("https://127.0.0.1:{}", closed_port());
    let no_current = write(
        &dir,
        "no-current",
        &kubeconfig(&server, None, "t", &["dev", "prod"], None),
    );
    let err = connect(Some(&no_current), None).await.unwrap_err();
    assert_eq!(
        assert_one_line(&err),
        format!(
            "kubeconfig {} sets no current-context; choose one of dev, prod with --context",
            no_current.display()
        )
    );

    let two = write(
        &dir,
        "two-contexts",
        &kubeconfig(&server, None, "t", &["dev", "prod"], Some("dev")),
    );
    let err = connect(Some(&two), Some("staging")).await.unwrap_err();
    assert_eq!(
        assert_one_line(&err),
        format!(
            "context \"staging\" is not in kubeconfig {} (it has dev, prod); pass one of those with --context",
            two.display()
        )
    );

    // Nothing listens on the port: the connection is refused, and the message says where.
    let err = connect(Some(&two), Some("prod")).await.unwrap_err();
    let PreflightError::Unreachable {
        server: named,
        context,
        cause,
    } = &err
    else {
        panic!("expected an unreachable server, got {err:?}");
    };
    assert_eq!(
        (named.as_str(), context.as_str()),
        (server.as_str(), "prod")
    );
    assert_eq!(cause, "connection refused", "{err}");
    assert_eq!(
        assert_one_line(&err),
        format!(
            "cannot reach the API server {server} (context prod): connection refused; check that the cluster runs and is reachable from here"
        )
    );

    let _ = std::fs::remove_dir_all(dir);
}

/// Creates `object` (JSON of a DaemonSet or Deployment) in its namespace.
async fn create<K>(client: &kube::Client, object: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .expect("a namespace")
        .to_string();
    let typed: K = serde_json::from_value(object).expect("the object parses");
    Api::<K>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &typed)
        .await
        .expect("the object is created")
}

/// Deletes a workload without waiting for a garbage collector (there is none here).
async fn delete<K>(client: &kube::Client, namespace: &str, name: &str)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::background())
        .await
        .expect("the object is deleted");
}

async fn ensure_namespace(client: &kube::Client, name: &str) {
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the namespace is created");
}

/// NMI as AKS's pod-identity add-on runs it: kube-system, reconciled by AKS, managed mode.
fn aks_addon_nmi() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {
            "name": "nmi", "namespace": "kube-system",
            "labels": {
                "component": "nmi", "tier": "node",
                "kubernetes.azure.com/managedby": "aks",
                "addonmanager.kubernetes.io/mode": "Reconcile"
            }
        },
        "spec": {
            "selector": {"matchLabels": {"component": "nmi", "tier": "node"}},
            "template": {
                "metadata": {"labels": {"component": "nmi", "tier": "node", "kubernetes.azure.com/managedby": "aks"}},
                "spec": {
                    "hostNetwork": true,
                    "containers": [{
                        "name": "nmi",
                        "image": "mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.16",
                        "args": [
                            "--node=$(NODE_NAME)", "--http-probe-port=8085",
                            "--operation-mode=managed", "--kubelet-config=/etc/default/kubelet"
                        ],
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
                    }]
                }
            }
        }
    })
}

/// The labels and annotations upstream's chart 4.1.18 puts on release `pod-identity`'s
/// `component`.
fn chart_metadata(component: &str) -> (Value, Value) {
    let labels = json!({
        "app.kubernetes.io/name": "aad-pod-identity",
        "app.kubernetes.io/instance": "pod-identity",
        "app.kubernetes.io/managed-by": "Helm",
        "helm.sh/chart": "aad-pod-identity-4.1.18",
        "app.kubernetes.io/component": component
    });
    let annotations = json!({
        "description": "Deploy components for aad-pod-identity",
        "meta.helm.sh/release-name": "pod-identity",
        "meta.helm.sh/release-namespace": "pod-identity"
    });
    (labels, annotations)
}

/// NMI and MIC as upstream's chart renders them with its default values.
fn chart_workloads() -> (Value, Value) {
    let (nmi_labels, nmi_annotations) = chart_metadata("nmi");
    let (mic_labels, mic_annotations) = chart_metadata("mic");
    let selector = |component: &str| {
        json!({
            "app.kubernetes.io/name": "aad-pod-identity",
            "app.kubernetes.io/instance": "pod-identity",
            "app.kubernetes.io/component": component
        })
    };
    let nmi = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "aad-pod-identity-nmi", "namespace": "pod-identity",
                     "labels": nmi_labels.clone(), "annotations": nmi_annotations},
        "spec": {
            "selector": {"matchLabels": selector("nmi")},
            "template": {
                "metadata": {"labels": nmi_labels},
                "spec": {
                    "serviceAccountName": "aad-pod-identity-nmi",
                    "hostNetwork": true,
                    "containers": [{
                        "name": "nmi",
                        "image": "mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17",
                        "args": [
                            "--node=$(NODE_NAME)", "--http-probe-port=8085",
                            "--enableScaleFeatures=true", "--metadata-header-required=true",
                            "--operation-mode=standard", "--kubelet-config=/etc/default/kubelet"
                        ],
                        "env": [
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "FORCENAMESPACED", "value": "false"}
                        ]
                    }]
                }
            }
        }
    });
    let mic = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "aad-pod-identity-mic", "namespace": "pod-identity",
                     "labels": mic_labels.clone(), "annotations": mic_annotations},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": selector("mic")},
            "template": {
                "metadata": {"labels": mic_labels},
                "spec": {
                    "serviceAccountName": "aad-pod-identity-mic",
                    "containers": [{
                        "name": "mic",
                        "image": "mcr.microsoft.com/oss/azure/aad-pod-identity/mic:v1.8.17",
                        "args": ["--cloudconfig=/etc/kubernetes/azure.json", "--logtostderr"],
                        "env": [
                            {"name": "MIC_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                            {"name": "FORCENAMESPACED", "value": "false"}
                        ]
                    }]
                }
            }
        }
    });
    (nmi, mic)
}

/// The `kind` documents of upstream's manifest at `relative` in the module.
fn upstream_documents(module_dir: &Path, relative: &str, kind: &str) -> Vec<Value> {
    Manifest::load(&module_dir.join(relative))
        .expect("upstream's manifest parses")
        .documents
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn mic_credentials() -> MicCredentials {
    MicCredentials {
        cloud: "AzurePublicCloud".into(),
        tenant_id: "00000000-0000-0000-0000-00000000000a".into(),
        subscription_id: "00000000-0000-0000-0000-00000000000b".into(),
        resource_group: "MC_podid_nodes".into(),
        client_id: "00000000-0000-0000-0000-00000000000c".into(),
        client_secret: "not-a-secret".into(),
        vm_type: "vmss".into(),
        user_assigned_identity_id: None,
    }
}

/// The server and CA of the local cluster's admin kubeconfig.
fn server_and_ca(admin_kubeconfig: &Path) -> (String, String) {
    let config = Kubeconfig::read_from(admin_kubeconfig).expect("the admin kubeconfig");
    let cluster = config.clusters[0].cluster.clone().expect("a cluster");
    (
        cluster.server.expect("a server"),
        cluster.certificate_authority_data.expect("an embedded CA"),
    )
}

async fn discovery_dry_run_and_permissions(setup: Setup) {
    let run_id = podid_local::generate_run_id();
    let work_dir = std::env::temp_dir().join(format!("podid-existing-cluster-test-{run_id}"));
    let cluster = LocalCluster::start(LocalClusterConfig {
        run_id,
        work_dir: work_dir.clone(),
        binaries: setup.binaries,
        nodes: vec![NodeConfig {
            name: "node-a".into(),
            provider_id: "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/0".into(),
            pod_cidr_index: 12,
            extra_addresses: vec![],
        }],
        nmi: NmiConfig::default(),
    })
    .await
    .expect("cluster starts");
    let client = cluster.client();

    // Preflight with the admin's kubeconfig: the server answers and accepts the credentials.
    let connected = connect(Some(cluster.kubeconfig()), None)
        .await
        .expect("the local cluster answers");
    let (server, ca) = server_and_ca(cluster.kubeconfig());
    assert_eq!(connected.server, server);
    assert_eq!(connected.context, "podid-local");
    assert!(
        connected
            .version
            .starts_with(&podid_toolchain::KUBERNETES_VERSION[..5]),
        "{connected:?}"
    );
    assert!(connected.user.is_some(), "{connected:?}");

    // Nothing runs.
    let found = discover(&connected.client).await.expect("discovery");
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(found, Discovery::none());

    // The AKS add-on: NMI alone, managed mode, in kube-system.
    create::<DaemonSet>(&client, aks_addon_nmi()).await;
    let found = discover(&client).await.expect("discovery");
    let nmi = found.nmi().expect("NMI is found");
    assert_eq!(nmi.source, Source::AksAddon);
    assert_eq!(
        (nmi.namespace.as_str(), nmi.name.as_str()),
        ("kube-system", "nmi")
    );
    assert_eq!(found.mode(), Some(Mode::Managed));
    assert_eq!(nmi.image.tag.as_deref(), Some("v1.8.16"));
    assert_eq!((nmi.desired, nmi.ready), (0, 0));
    assert!(found.mic.is_empty());
    assert!(found.problems().is_empty(), "{:?}", found.problems());
    assert_eq!(
        found.environment(),
        [
            (
                "nmi".to_string(),
                "AKS add-on in kube-system (DaemonSet nmi), managed mode, image \
                 mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.16, 0/0 ready"
                    .to_string()
            ),
            (
                "nmi flags".to_string(),
                "--node=$(NODE_NAME) --http-probe-port=8085 --operation-mode=managed \
                 --kubelet-config=/etc/default/kubelet"
                    .to_string()
            ),
            (
                "mic".to_string(),
                "none (NMI runs in managed mode)".to_string()
            ),
        ]
    );
    delete::<DaemonSet>(&client, "kube-system", "nmi").await;

    // Upstream's chart: NMI and MIC in the release's namespace, standard mode.
    ensure_namespace(&client, "pod-identity").await;
    let (chart_nmi, chart_mic) = chart_workloads();
    create::<DaemonSet>(&client, chart_nmi).await;
    create::<Deployment>(&client, chart_mic).await;
    let found = discover(&client).await.expect("discovery");
    let chart = Source::HelmChart {
        chart: Some("aad-pod-identity-4.1.18".into()),
        release: Some("pod-identity".into()),
    };
    let (nmi, mic) = (found.nmi().unwrap(), found.mic().unwrap());
    assert_eq!((&nmi.source, &mic.source), (&chart, &chart));
    assert_eq!(chart.as_str(), "helm-chart");
    assert_eq!(found.mode(), Some(Mode::Standard));
    assert_eq!(nmi.flags.get("metadata-header-required"), Some("true"));
    assert_eq!(
        nmi.flags.effective("forceNamespaced").as_deref(),
        Some("false")
    );
    assert_eq!(
        mic.flags.get("cloudconfig"),
        Some("/etc/kubernetes/azure.json")
    );
    assert_eq!(mic.image.tag.as_deref(), Some("v1.8.17"));
    assert_eq!((mic.desired, mic.ready), (2, 0));
    assert_eq!(
        nmi.workload().label_selector(),
        "app.kubernetes.io/component=nmi,app.kubernetes.io/instance=pod-identity,app.kubernetes.io/name=aad-pod-identity"
    );
    assert_eq!(
        found.environment()[0].1,
        "helm chart aad-pod-identity-4.1.18 (release pod-identity) in pod-identity \
         (DaemonSet aad-pod-identity-nmi), standard mode, image \
         mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17, 0/0 ready"
    );
    // A scenario's flags are compared with what runs, defaults included.
    let needs: Vec<String> = vec![
        "--metadata-header-required=true".into(),
        "--set-retry-after-header=true".into(),
    ];
    let differences = found.nmi_flags().unwrap().differences(&needs);
    assert_eq!(
        differences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["--set-retry-after-header=true (runs with --set-retry-after-header=false)"]
    );
    delete::<DaemonSet>(&client, "pod-identity", "aad-pod-identity-nmi").await;
    delete::<Deployment>(&client, "pod-identity", "aad-pod-identity-mic").await;

    // Upstream's manifests, taken from the pinned module as released.
    for (relative, mode) in [
        (
            "deploy/infra/noazurejson/deployment-rbac.yaml",
            Mode::Standard,
        ),
        ("deploy/infra/managed-mode-deployment.yaml", Mode::Managed),
    ] {
        let daemon_sets = upstream_documents(&setup.module_dir, relative, "DaemonSet");
        let deployments = upstream_documents(&setup.module_dir, relative, "Deployment");
        for ds in &daemon_sets {
            create::<DaemonSet>(&client, ds.clone()).await;
        }
        for d in &deployments {
            create::<Deployment>(&client, d.clone()).await;
        }
        let found = discover(&client).await.expect("discovery");
        assert_eq!(found.nmi.len(), 1, "{relative}: {found:?}");
        assert_eq!(found.mic.len(), deployments.len(), "{relative}");
        let nmi = found.nmi().unwrap();
        assert_eq!(nmi.source, Source::Manifests, "{relative}");
        assert_eq!(nmi.source.as_str(), "manifests");
        assert_eq!(found.mode(), Some(mode), "{relative}");
        assert_eq!(nmi.image.tag.as_deref(), Some("v1.8.17"));
        assert_eq!(
            nmi.flags.args(),
            strings(&daemon_sets[0]["spec"]["template"]["spec"]["containers"][0]["args"])
        );
        assert!(
            found.problems().is_empty(),
            "{relative}: {:?}",
            found.problems()
        );
        for f in found.nmi.iter().chain(&found.mic) {
            match f.component {
                Component::Nmi => delete::<DaemonSet>(&client, &f.namespace, &f.name).await,
                Component::Mic => delete::<Deployment>(&client, &f.namespace, &f.name).await,
            }
        }
    }
    assert!(discover(&client).await.unwrap().is_empty());

    // Permissions: the admin may install anywhere.
    let admin = install_permission(&client, "podid-system").await.unwrap();
    assert!(admin.allowed(), "{admin}");
    assert!(admin.require().is_ok());

    // A service account without RBAC authenticates (with a TokenRequest token) but may do
    // nothing: preflight passes, installing is refused with what is missing, discovery too.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "podid-nobody"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("service account");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let issued: TokenRequest = accounts
        .create_subresource("token", "podid-nobody", &PostParams::default(), &request)
        .await
        .expect("a token");
    let token = issued
        .status
        .and_then(|s| s.token)
        .expect("the token request answers with a token");
    let dir = scratch_dir("nobody");
    let nobody_config = write(
        &dir,
        "nobody",
        &kubeconfig(&server, Some(&ca), &token, &["nobody"], Some("nobody")),
    );
    let nobody = connect(Some(&nobody_config), None)
        .await
        .expect("a valid token connects");
    assert_eq!(
        nobody.user.as_deref(),
        Some("system:serviceaccount:default:podid-nobody")
    );
    let refused = install_permission(&nobody.client, "kube-system")
        .await
        .unwrap();
    assert!(!refused.allowed());
    for wanted in [
        "create/patch customresourcedefinitions.apiextensions.k8s.io",
        "create/patch/delete clusterroles.rbac.authorization.k8s.io",
        "get namespaces",
        "create/patch/delete daemonsets.apps in kube-system",
        "create/patch/delete deployments.apps in kube-system",
        "create/patch/delete serviceaccounts in kube-system",
        "create/patch/delete secrets in kube-system",
        "create/patch/delete configmaps in kube-system",
    ] {
        assert!(
            refused.missing.iter().any(|m| m == wanted),
            "{wanted} missing from {:?}",
            refused.missing
        );
    }
    let refusal = refused.require().unwrap_err().to_string();
    assert!(
        refusal.starts_with(
            "the cluster runs no NMI and podid may not install it: cannot get namespaces, \
             create/patch customresourcedefinitions.apiextensions.k8s.io, "
        ),
        "{refusal}"
    );
    assert!(!refusal.contains('\n'));
    let err = discover(&nobody.client).await.unwrap_err().to_string();
    assert!(
        err.starts_with(
            "listing daemonsets.apps in all namespaces to find NMI and MIC: 403 Forbidden:"
        ),
        "{err}"
    );

    // A token the server does not know is refused in one line.
    let stranger = write(
        &dir,
        "stranger",
        &kubeconfig(&server, Some(&ca), "not-a-token", &["x"], Some("x")),
    );
    let err = connect(Some(&stranger), None).await.unwrap_err();
    assert!(
        matches!(err, PreflightError::Unauthorized { .. }),
        "{err:?}"
    );
    assert!(assert_one_line(&err).contains("(401 Unauthorized"), "{err}");

    // Dry run, managed mode in kube-system: every object accepted, nothing created.
    let mut managed_request = install_request(Mode::Managed, "kube-system", CloudAccess::default());
    managed_request.nmi_flags = vec!["--metadata-header-required=true".into()];
    let managed = InstallPlan::render(&setup.module_dir, &managed_request).expect("renders");
    let report = dry_run(&client, &managed).await.expect("dry run");
    assert_eq!(report.results.len(), managed.rendered.objects.len());
    assert!(
        report
            .results
            .iter()
            .all(|r| r.outcome == DryRunOutcome::Accepted),
        "{}",
        report.summary()
    );
    assert!(report.accepted());
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    assert!(
        daemon_sets
            .get_opt(&managed.rendered.nmi.name)
            .await
            .unwrap()
            .is_none()
    );
    let roles: Api<ClusterRole> = Api::all(client.clone());
    assert!(
        roles
            .get_opt("aad-pod-id-nmi-role")
            .await
            .unwrap()
            .is_none()
    );
    assert!(discover(&client).await.unwrap().is_empty());

    // The same plan dry-run by the account without rights: refused object by object.
    let report = dry_run(&nobody.client, &managed).await.expect("dry run");
    assert!(!report.accepted());
    assert_eq!(
        report.rejected().count(),
        report.results.len(),
        "{}",
        report.summary()
    );
    assert!(
        report.summary().contains("403 Forbidden"),
        "{}",
        report.summary()
    );

    // Standard mode in a namespace of its own: the namespace and cluster-wide objects are
    // accepted; what goes into the namespace cannot be checked before it exists.
    let mut standard_request = install_request(
        Mode::Standard,
        "podid-system",
        CloudAccess {
            mic_credentials: Some(mic_credentials()),
            ..CloudAccess::default()
        },
    );
    standard_request.mic_replicas = Some(1);
    let standard = InstallPlan::render(&setup.module_dir, &standard_request).expect("renders");
    let report = dry_run(&client, &standard).await.expect("dry run");
    assert!(report.accepted(), "{}", report.summary());
    for result in &report.results {
        let inside = result.object.namespace.as_deref() == Some("podid-system");
        match (&result.outcome, inside) {
            (DryRunOutcome::Accepted, false) => {}
            (DryRunOutcome::Unverified(why), true) => {
                assert_eq!(why, "namespace podid-system does not exist yet")
            }
            other => panic!("{}: {other:?}", result.object),
        }
    }
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt("podid-system")
            .await
            .unwrap()
            .is_none(),
        "a dry run creates nothing"
    );
    assert!(
        roles
            .get_opt("aad-pod-id-mic-role")
            .await
            .unwrap()
            .is_none()
    );

    // podid's own installation is recognised as podid's, then removed.
    install(&client, &managed, &ApplyOptions::default())
        .await
        .expect("installs");
    let found = discover(&client).await.expect("discovery");
    let nmi = found.nmi().expect("podid's NMI is found");
    assert_eq!(nmi.source, Source::Podid);
    assert_eq!(nmi.source.as_str(), "podid-installed");
    assert_eq!(found.mode(), Some(Mode::Managed));
    assert_eq!(nmi.image.reference, managed_request.nmi_image);
    assert_eq!(nmi.flags.get("metadata-header-required"), Some("true"));
    assert!(
        found.environment()[0]
            .1
            .starts_with("installed by podid in kube-system (DaemonSet nmi), managed mode"),
        "{:?}",
        found.environment()
    );
    uninstall(&client, &managed, &RemoveOptions::default())
        .await
        .expect("removes");
    assert!(discover(&client).await.unwrap().is_empty());

    let report = cluster.shutdown().await.unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    let _ = std::fs::remove_dir_all(work_dir);
    let _ = std::fs::remove_dir_all(dir);
}
