//! Upstream's manifests, rendered from the real aad-pod-identity module, applied to a real
//! kube-apiserver (the local cluster's; it has no kubelet or controllers, so nothing runs):
//! every object is accepted, upstream's RBAC gives NMI and MIC the rights they need and no
//! more, re-applying is a no-op, a flag change or restart bumps the template, and removal
//! deletes what was applied. Workload objects (owner, CA, pod) are created and cleaned up too.
//!
//! Needs root and the toolchain (built on first use); `PODID_SKIP_E2E=1` marks it ignored.
//! The module directory is found in the toolchain's Go module cache, or given with
//! `PODID_AAD_POD_IDENTITY_DIR`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use podid_incluster::rollout::{RESTARTED_AT_ANNOTATION, daemonset_rollout};
use podid_incluster::workload::PLACEHOLDER_NODE_SELECTOR;
use podid_incluster::{
    ApplyOptions, CloudAccess, IdentityDeployment, ImagePullPolicy, MicCredentials, Mode,
    Placement, RemoveOptions, Rollout, WorkloadOwner, WorkloadSpec, apply, create_and_wait_running,
    delete_and_wait_gone, remove, render_from_module, restart, verify_module,
};
use podid_local::{Binaries, LocalCluster, LocalClusterConfig, NmiConfig, NodeConfig};

use podid_toolchain::AAD_POD_IDENTITY_DIR_VAR as MODULE_DIR_VAR;

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
            "the aad-pod-identity module is not at {} (the toolchain downloads it with the \
             CRDs; set {MODULE_DIR_VAR} to its directory)",
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

fn main() -> std::process::ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("podid_incluster=info")),
        )
        .with_test_writer()
        .try_init();
    let args = libtest_mimic::Arguments::from_args();
    let skip = std::env::var("PODID_SKIP_E2E").is_ok_and(|v| !v.is_empty() && v != "0");
    if skip {
        eprintln!("PODID_SKIP_E2E is set: the real-apiserver test is ignored on this machine");
    }
    let trial = libtest_mimic::Trial::test("upstream_manifests_apply_and_remove", || {
        let setup = setup().map_err(libtest_mimic::Failed::from)?;
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| libtest_mimic::Failed::from(e.to_string()))?
            .block_on(upstream_manifests_apply_and_remove(setup));
        Ok(())
    })
    .with_ignored_flag(skip);
    libtest_mimic::run(&args, vec![trial]).exit_code()
}

fn request(mode: Mode, namespace: &str) -> IdentityDeployment {
    let mock: IpAddr = "172.18.255.253".parse().unwrap();
    IdentityDeployment {
        mode,
        namespace: namespace.into(),
        nmi_image: "podid.local/nmi:v1.8.17".into(),
        mic_image: "podid.local/mic:v1.8.17".into(),
        nmi_flags: vec!["--metadata-header-required=true".into()],
        mic_flags: vec!["--syncRetryDuration=30s".into()],
        mic_replicas: None,
        cloud: CloudAccess {
            host_aliases: vec![(
                mock,
                vec![
                    "login.microsoftonline.com".into(),
                    "management.azure.com".into(),
                ],
            )],
            ca_bundle_pem: Some(
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            ),
            mic_credentials: Some(MicCredentials {
                cloud: "AzurePublicCloud".into(),
                tenant_id: "00000000-0000-0000-0000-000000000001".into(),
                subscription_id: "00000000-0000-0000-0000-000000000002".into(),
                resource_group: "podid-nodes".into(),
                client_id: "00000000-0000-0000-0000-000000000003".into(),
                client_secret: "not-a-secret".into(),
                vm_type: "vmss".into(),
                user_assigned_identity_id: None,
            }),
        },
        image_pull_policy: ImagePullPolicy::Never,
        install_crds: true,
    }
}

async fn can(
    client: &kube::Client,
    account: &str,
    namespace: &str,
    verb: &str,
    group: &str,
    resource: &str,
) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{namespace}:{account}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    api.create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

async fn upstream_manifests_apply_and_remove(setup: Setup) {
    let checked = verify_module(&setup.module_dir).expect("the real module renders");
    assert_eq!(checked.len(), 2);

    let run_id = podid_local::generate_run_id();
    let work_dir = std::env::temp_dir().join(format!("podid-incluster-test-{run_id}"));
    let cluster = LocalCluster::start(LocalClusterConfig {
        run_id,
        work_dir: work_dir.clone(),
        binaries: setup.binaries,
        nodes: vec![NodeConfig {
            name: "node-a".into(),
            provider_id: "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss/virtualMachines/0".into(),
            pod_cidr_index: 11,
            extra_addresses: vec![],
        }],
        nmi: NmiConfig::default(),
    })
    .await
    .expect("cluster starts");
    let client = cluster.client();

    // Standard mode in a namespace of its own.
    let ns = "podid-it";
    let standard = render_from_module(&setup.module_dir, &request(Mode::Standard, ns)).unwrap();
    let report = apply(&client, &standard, &ApplyOptions::default())
        .await
        .expect("standard mode applies");
    assert_eq!(report.applied.len(), standard.objects.len());
    assert_eq!(report.applied[0].to_string(), format!("Namespace {ns}"));

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in standard.crd_names() {
        crds.get(&name).await.expect("CRD exists");
    }
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    let nmi = daemonsets
        .get(&standard.nmi.name)
        .await
        .expect("NMI exists");
    let nmi_pod = nmi.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        nmi_pod.containers[0].image.as_deref(),
        Some("podid.local/nmi:v1.8.17")
    );
    assert!(nmi_pod.host_network.unwrap_or(false));
    assert_eq!(nmi_pod.host_aliases.as_ref().unwrap().len(), 1);
    let mic_name = &standard.mic.as_ref().unwrap().name;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mic = deployments.get(mic_name).await.expect("MIC exists");
    let mic_env = mic.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    assert!(mic_env.iter().any(|e| e.name == "SSL_CERT_FILE"));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets.get("aadpodidentity-admin-secret").await.unwrap();
    assert_eq!(
        secret.data.unwrap()["ResourceGroup"].0,
        b"podid-nodes".to_vec()
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    config_maps
        .get("podid-ca")
        .await
        .expect("CA ConfigMap exists");
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get("aad-pod-id-nmi-service-account")
        .await
        .expect("NMI's service account exists");

    // Upstream's RBAC, bound to the moved service accounts: what NMI and MIC need, no more.
    let nmi_sa = "aad-pod-id-nmi-service-account";
    let mic_sa = "aad-pod-id-mic-service-account";
    assert!(can(&client, nmi_sa, ns, "watch", "", "pods").await);
    assert!(
        can(
            &client,
            nmi_sa,
            ns,
            "list",
            "aadpodidentity.k8s.io",
            "azureassignedidentities"
        )
        .await
    );
    assert!(!can(&client, nmi_sa, ns, "create", "", "pods").await);
    assert!(
        !can(
            &client,
            nmi_sa,
            ns,
            "update",
            "aadpodidentity.k8s.io",
            "azureassignedidentities"
        )
        .await
    );
    assert!(
        can(
            &client,
            mic_sa,
            ns,
            "create",
            "aadpodidentity.k8s.io",
            "azureassignedidentities"
        )
        .await
    );
    assert!(can(&client, mic_sa, ns, "update", "", "endpoints").await);
    assert!(!can(&client, mic_sa, ns, "get", "", "secrets").await);

    // Without controllers nothing rolls out; the status check says so instead of passing.
    assert!(matches!(daemonset_rollout(&nmi), Rollout::Pending(_)));

    // Re-applying the same rendering changes nothing; a flag change or a restart does.
    let generation = nmi.metadata.generation;
    apply(&client, &standard, &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        daemonsets
            .get(&standard.nmi.name)
            .await
            .unwrap()
            .metadata
            .generation,
        generation
    );
    let mut changed_request = request(Mode::Standard, ns);
    changed_request
        .nmi_flags
        .push("--block-instance-metadata=true".into());
    let changed = render_from_module(&setup.module_dir, &changed_request).unwrap();
    apply(&client, &changed, &ApplyOptions::default())
        .await
        .unwrap();
    let after_flags = daemonsets.get(&standard.nmi.name).await.unwrap();
    assert_eq!(after_flags.metadata.generation, generation.map(|g| g + 1));
    restart(&client, &standard.nmi).await.unwrap();
    let restarted = daemonsets.get(&standard.nmi.name).await.unwrap();
    assert_eq!(restarted.metadata.generation, generation.map(|g| g + 2));
    let annotations = restarted
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(annotations.contains_key(RESTARTED_AT_ANNOTATION));
    // The restart stamp is not podid's applied state: the next apply keeps it.
    apply(&client, &changed, &ApplyOptions::default())
        .await
        .unwrap();
    let kept = daemonsets.get(&standard.nmi.name).await.unwrap();
    assert_eq!(kept.metadata.generation, generation.map(|g| g + 2));

    // Workload objects: namespace, CA, placeholder owner, pod. No kubelet runs it, so the wait
    // times out with the pod's state; deleting it removes the owner too.
    let workload = WorkloadSpec {
        namespace: "podid-workloads".into(),
        name: "reader".into(),
        placement: Some(Placement::HostnameSelector("node-a".into())),
        labels: BTreeMap::from([("aadpodidbinding".into(), "reader".into())]),
        annotations: BTreeMap::new(),
        owner: Some(WorkloadOwner::ReplicaSet("reader-5d8f".into())),
        image: "podid.local/workload:1".into(),
        command: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        host_aliases: Vec::new(),
        ca_bundle_pem: Some("PEM".into()),
        image_pull_policy: ImagePullPolicy::Never,
    };
    let err = create_and_wait_running(&client, &workload, Duration::from_secs(1))
        .await
        .expect_err("no kubelet runs the pod");
    let message = err.to_string();
    assert!(
        message.contains("pod podid-workloads/reader running and ready not done after"),
        "{message}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "podid-workloads");
    let pod = pods.get("reader").await.unwrap();
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "podid-workloads");
    let rs = replica_sets.get("reader-5d8f").await.unwrap();
    assert_eq!(Some(&owner.uid), rs.metadata.uid.as_ref());
    Api::<ConfigMap>::namespaced(client.clone(), "podid-workloads")
        .get("podid-ca")
        .await
        .expect("the workload namespace has the CA");
    delete_and_wait_gone(
        &client,
        "podid-workloads",
        "reader",
        Duration::from_secs(10),
    )
    .await
    .expect("an unscheduled pod goes at once");
    assert!(replica_sets.get_opt("reader-5d8f").await.unwrap().is_none());

    // A DaemonSet owner: a placeholder DaemonSet no node runs a pod of, referred to (not as
    // controller) by the pod, and deleted with it.
    let agent = WorkloadSpec {
        name: "agent".into(),
        owner: Some(WorkloadOwner::DaemonSet("mic-agent".into())),
        ..workload.clone()
    };
    create_and_wait_running(&client, &agent, Duration::from_secs(1))
        .await
        .expect_err("no kubelet runs the pod");
    let pod = pods.get("agent").await.unwrap();
    let owners = pod.metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1, "{owners:?}");
    let owner = &owners[0];
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "podid-workloads");
    let ds = daemon_sets.get("mic-agent").await.unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("DaemonSet", "mic-agent", Some(false))
    );
    assert_eq!(Some(&owner.uid), ds.metadata.uid.as_ref());
    let node_selector = ds.spec.unwrap().template.spec.unwrap().node_selector;
    assert_eq!(
        node_selector,
        Some(BTreeMap::from([(
            PLACEHOLDER_NODE_SELECTOR.0.to_string(),
            PLACEHOLDER_NODE_SELECTOR.1.to_string()
        )]))
    );
    assert!(replica_sets.get_opt("mic-agent").await.unwrap().is_none());
    delete_and_wait_gone(&client, "podid-workloads", "agent", Duration::from_secs(10))
        .await
        .expect("an unscheduled pod goes at once");
    assert!(daemon_sets.get_opt("mic-agent").await.unwrap().is_none());

    // Removal deletes what was applied and keeps the CRDs.
    let removed = remove(&client, &changed, &RemoveOptions::default())
        .await
        .expect("removal");
    let kinds: Vec<String> = removed.deleted.iter().map(|k| k.kind.clone()).collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("Deployment"),
        "{kinds:?}"
    );
    assert!(
        daemonsets
            .get_opt(&standard.nmi.name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(deployments.get_opt(mic_name).await.unwrap().is_none());
    assert!(
        secrets
            .get_opt("aadpodidentity-admin-secret")
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
    for name in standard.crd_names() {
        crds.get(&name).await.expect("CRDs are kept");
    }

    // The namespace is left terminating (no namespace controller here); applying into it
    // again waits for it to go instead of failing object by object.
    let quick = ApplyOptions {
        namespace_timeout: Duration::from_secs(1),
        ..ApplyOptions::default()
    };
    let err = apply(&client, &standard, &quick).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("namespace podid-it to finish terminating not done after"),
        "{err}"
    );

    // Managed mode in upstream's namespace, without reinstalling the CRDs.
    let mut managed_request = request(Mode::Managed, "kube-system");
    managed_request.install_crds = false;
    let managed = render_from_module(&setup.module_dir, &managed_request).unwrap();
    assert!(managed.mic.is_none());
    assert!(managed.object("Namespace", "kube-system").is_none());
    apply(&client, &managed, &ApplyOptions::default())
        .await
        .expect("managed mode applies");
    let managed_ds: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    let args = managed_ds
        .get(&managed.nmi.name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap();
    assert!(
        args.contains(&"--operation-mode=managed".to_string()),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--MICNamespace")),
        "{args:?}"
    );
    assert!(
        can(
            &client,
            nmi_sa,
            "kube-system",
            "list",
            "aadpodidentity.k8s.io",
            "azureidentitybindings"
        )
        .await
    );
    remove(&client, &managed, &RemoveOptions::default())
        .await
        .unwrap();
    assert!(
        managed_ds
            .get_opt(&managed.nmi.name)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt("kube-system")
            .await
            .unwrap()
            .is_some(),
        "built-in namespaces are never deleted"
    );

    let report = cluster.shutdown().await.unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    let _ = std::fs::remove_dir_all(work_dir);
}
