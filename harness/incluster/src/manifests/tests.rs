//! Rendering against a small manifest written for these tests, shaped like upstream's
//! installation (service accounts, a CRD, RBAC, an NMI DaemonSet, a MIC Deployment reading a
//! placeholder Secret) but not taken from it.

use std::net::IpAddr;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::deployment::{CloudAccess, ImagePullPolicy, MicCredentials};

const STANDARD: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: node-agent, namespace: origin}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.test}
spec:
  group: example.test
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
status: {acceptedNames: {kind: "", plural: ""}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-agent-role}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: node-agent-binding}
subjects:
- {kind: ServiceAccount, name: node-agent, namespace: origin}
- {kind: Group, name: someone-else}
roleRef: {kind: ClusterRole, name: node-agent-role, apiGroup: rbac.authorization.k8s.io}
---
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: origin}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      serviceAccountName: node-agent
      hostNetwork: true
      volumes:
      - {name: kubelet-file, hostPath: {path: /etc/default/kubelet, type: FileOrCreate}}
      containers:
      - name: nmi
        image: upstream.test/nmi:released
        args: ["--node=$(MY_NODE)", "--http-probe-port=8085"]
        env:
        - {name: MY_NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        securityContext: {runAsUser: 0, capabilities: {add: [NET_ADMIN]}}
        volumeMounts:
        - {name: kubelet-file, mountPath: /etc/default/kubelet, readOnly: true}
        livenessProbe: {httpGet: {path: /healthz, port: 8085}}
---
apiVersion: v1
kind: Secret
metadata: {name: controller-creds, namespace: origin}
data: {Cloud: "<fill me>", TenantID: "<fill me>", ClientSecret: "<fill me>"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: controller, namespace: origin}
spec:
  replicas: 2
  selector: {matchLabels: {app: controller}}
  template:
    metadata: {labels: {app: controller}}
    spec:
      containers:
      - name: mic
        image: upstream.test/mic:released
        args: ["--logtostderr"]
        env:
        - {name: OWN_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: CLOUD, valueFrom: {secretKeyRef: {name: controller-creds, key: Cloud}}}
        - {name: TENANT_ID, valueFrom: {secretKeyRef: {name: controller-creds, key: TenantID}}}
        - {name: CLIENT_SECRET, valueFrom: {secretKeyRef: {name: controller-creds, key: ClientSecret}}}
        securityContext: {readOnlyRootFilesystem: true}
"#;

fn manifest(text: &str) -> Manifest {
    Manifest::parse(text, Path::new("synthetic.yaml")).expect("the fixture parses")
}

/// The managed-mode fixture: the standard one without the controller and its Secret.
fn managed_text() -> String {
    STANDARD
        .split("\n---\n")
        .filter(|doc| !doc.contains("controller"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn credentials() -> MicCredentials {
    MicCredentials {
        cloud: "AzurePublicCloud".into(),
        tenant_id: "tenant-1".into(),
        subscription_id: "sub-1".into(),
        resource_group: "rg-1".into(),
        client_id: "client-1".into(),
        client_secret: "s3cret".into(),
        vm_type: "vmss".into(),
        user_assigned_identity_id: None,
    }
}

fn request(mode: Mode) -> IdentityDeployment {
    let mock: IpAddr = "172.18.255.253".parse().unwrap();
    IdentityDeployment {
        mode,
        namespace: "podid-system".into(),
        nmi_image: "podid.test/nmi:v1.8.17".into(),
        mic_image: "podid.test/mic:v1.8.17".into(),
        nmi_flags: vec!["--metadata-header-required=false".into()],
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
            mic_credentials: Some(credentials()),
        },
        image_pull_policy: ImagePullPolicy::Never,
        install_crds: true,
    }
}

fn snapshot_yaml(rendered: &RenderedDeployment) -> String {
    rendered.to_yaml().expect("renders as YAML")
}

#[test]
fn standard_mode_in_its_own_namespace() {
    let rendered = render(&manifest(STANDARD), &request(Mode::Standard)).unwrap();
    insta::assert_snapshot!(snapshot_yaml(&rendered));
    assert_eq!(
        rendered.nmi.to_string(),
        "DaemonSet podid-system/node-agent"
    );
    assert_eq!(rendered.nmi.label_selector(), "app=node-agent");
    assert_eq!(
        rendered.mic.as_ref().map(ToString::to_string).as_deref(),
        Some("Deployment podid-system/controller")
    );
    assert_eq!(rendered.crd_names(), ["widgets.example.test"]);
}

#[test]
fn managed_mode_in_a_built_in_namespace_without_crds_or_ca() {
    let mut req = request(Mode::Managed);
    req.namespace = "kube-system".into();
    req.install_crds = false;
    req.cloud = CloudAccess::default();
    req.nmi_flags.clear();
    req.image_pull_policy = ImagePullPolicy::IfNotPresent;
    let rendered = render(&manifest(&managed_text()), &req).unwrap();
    insta::assert_snapshot!(snapshot_yaml(&rendered));
    assert!(rendered.mic.is_none());
    assert!(rendered.crd_names().is_empty());
    assert!(rendered.objects_of_kind("Namespace").next().is_none());
}

#[test]
fn rbac_and_service_accounts_are_upstreams_apart_from_the_namespace() {
    let original = manifest(STANDARD);
    let rendered = render(&original, &request(Mode::Standard)).unwrap();
    let upstream = |kind: &str, name: &str| {
        original
            .documents
            .iter()
            .find(|o| kind_of(o) == kind && name_of(o) == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        rendered.object("ClusterRole", "node-agent-role").unwrap(),
        &upstream("ClusterRole", "node-agent-role")
    );
    let mut binding = upstream("ClusterRoleBinding", "node-agent-binding");
    binding["subjects"][0]["namespace"] = json!("podid-system");
    assert_eq!(
        rendered
            .object("ClusterRoleBinding", "node-agent-binding")
            .unwrap(),
        &binding
    );
    let mut account = upstream("ServiceAccount", "node-agent");
    account["metadata"]["namespace"] = json!("podid-system");
    assert_eq!(
        rendered.object("ServiceAccount", "node-agent").unwrap(),
        &account
    );
}

#[test]
fn security_context_and_probes_are_left_alone() {
    let original = manifest(STANDARD);
    let rendered = render(&original, &request(Mode::Standard)).unwrap();
    let container = |o: &Value| {
        o.pointer("/spec/template/spec/containers/0")
            .unwrap()
            .clone()
    };
    let before = container(
        original
            .documents
            .iter()
            .find(|o| kind_of(o) == "DaemonSet")
            .unwrap(),
    );
    let after = container(rendered.object("DaemonSet", "node-agent").unwrap());
    for field in ["securityContext", "livenessProbe"] {
        assert_eq!(before[field], after[field], "{field}");
    }
    let template = |o: &Value| o.pointer("/spec/template/spec/serviceAccountName").cloned();
    assert_eq!(
        template(rendered.object("DaemonSet", "node-agent").unwrap()),
        Some(json!("node-agent"))
    );
}

#[test]
fn mic_secret_holds_the_credentials_and_no_placeholder() {
    let rendered = render(&manifest(STANDARD), &request(Mode::Standard)).unwrap();
    let secret = rendered.object("Secret", "controller-creds").unwrap();
    let decode = |key: &str| {
        let encoded = secret["data"][key].as_str().unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode("Cloud"), "AzurePublicCloud");
    assert_eq!(decode("TenantID"), "tenant-1");
    assert_eq!(decode("ClientSecret"), "s3cret");
    assert_eq!(decode("ResourceGroup"), "rg-1");
    assert_eq!(secret["metadata"]["namespace"], json!("podid-system"));
}

#[test]
fn caller_flags_come_last_after_the_namespace_flags() {
    let rendered = render(&manifest(STANDARD), &request(Mode::Standard)).unwrap();
    let args = |kind: &str, name: &str| {
        rendered.object(kind, name).unwrap()["spec"]["template"]["spec"]["containers"][0]["args"]
            .clone()
    };
    assert_eq!(
        args("DaemonSet", "node-agent"),
        json!([
            "--node=$(MY_NODE)",
            "--http-probe-port=8085",
            "--MICNamespace=podid-system",
            "--metadata-header-required=false"
        ])
    );
    assert_eq!(
        args("Deployment", "controller"),
        json!([
            "--logtostderr",
            "--leader-election-namespace=podid-system",
            "--syncRetryDuration=30s"
        ])
    );
}

#[test]
fn credentials_never_show_in_debug_output() {
    let shown = format!("{:?}", request(Mode::Standard));
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

fn render_error(text: &str, req: &IdentityDeployment) -> String {
    render(&manifest(text), req).unwrap_err().to_string()
}

#[test]
fn standard_mode_without_mic_is_refused() {
    let err = render_error(&managed_text(), &request(Mode::Standard));
    assert!(err.contains("standard mode needs MIC"), "{err}");
}

#[test]
fn managed_mode_with_mic_is_refused() {
    let err = render_error(STANDARD, &request(Mode::Managed));
    assert!(err.contains("managed mode runs no MIC"), "{err}");
}

#[test]
fn a_secret_key_podid_cannot_fill_is_refused() {
    let text = STANDARD.replace("key: TenantID", "key: Surprise");
    let err = render_error(&text, &request(Mode::Standard));
    assert_eq!(
        err,
        "rendering Secret podid-system/controller-creds: MIC reads key \"Surprise\", which podid does not know how to fill"
    );
}

#[test]
fn nmi_without_its_kubelet_config_mount_is_refused_unless_the_check_is_off() {
    let text = STANDARD.replace(
        "        - {name: kubelet-file, mountPath: /etc/default/kubelet, readOnly: true}\n",
        "",
    );
    let mut req = request(Mode::Standard);
    let err = render_error(&text, &req);
    assert!(
        err.contains("kubelet config at /etc/default/kubelet"),
        "{err}"
    );
    req.nmi_flags.push("--allow-network-plugin-kubenet".into());
    render(&manifest(&text), &req).unwrap();
}

#[test]
fn a_kubelet_config_elsewhere_must_be_mounted_there() {
    let mut req = request(Mode::Standard);
    req.nmi_flags
        .push("--kubelet-config=/var/lib/kubelet/flags".into());
    let err = render_error(STANDARD, &req);
    assert!(err.contains("/var/lib/kubelet/flags"), "{err}");
}

#[test]
fn nmi_node_must_come_from_the_downward_api() {
    let text = STANDARD.replace("fieldPath: spec.nodeName", "fieldPath: status.hostIP");
    let err = render_error(&text, &request(Mode::Standard));
    assert!(err.contains("does not come from spec.nodeName"), "{err}");
    let mut req = request(Mode::Standard);
    req.nmi_flags.push("--node=node-1".into());
    let err = render_error(STANDARD, &req);
    assert!(err.contains("names one node for every node"), "{err}");
}

#[test]
fn requests_are_validated() {
    let mut req = request(Mode::Standard);
    req.namespace = "Not_A_Label".into();
    assert!(render_error(STANDARD, &req).contains("not a DNS label"));
    let mut req = request(Mode::Standard);
    req.cloud.mic_credentials = None;
    assert!(render_error(STANDARD, &req).contains("needs MIC's credentials"));
}

#[test]
fn unparseable_manifests_name_the_file() {
    let err = Manifest::parse("kind: [", Path::new("broken.yaml")).unwrap_err();
    assert!(err.to_string().starts_with("parsing broken.yaml:"), "{err}");
    let err = Manifest::parse("kind: Secret\napiVersion: v1\n", Path::new("x.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "parsing x.yaml: a Secret without `metadata.name`"
    );
}

#[test]
fn manifest_paths_are_inside_the_module() {
    let dir = Path::new("/m");
    assert_eq!(
        manifest_path(dir, Mode::Standard),
        Path::new("/m/deploy/infra/noazurejson/deployment-rbac.yaml")
    );
    assert_eq!(
        manifest_path(dir, Mode::Managed),
        Path::new("/m/deploy/infra/managed-mode-deployment.yaml")
    );
}

#[test]
fn a_missing_module_is_reported_with_its_path() {
    let err = verify_module(Path::new("/nonexistent/aad-pod-identity")).unwrap_err();
    assert!(
        err.to_string()
            .contains("looking for the aad-pod-identity module at /nonexistent/aad-pod-identity"),
        "{err}"
    );
}

#[test]
fn mic_replicas_and_the_cluster_identity_are_set_when_asked() {
    let unchanged = render(&manifest(STANDARD), &request(Mode::Standard)).unwrap();
    let deployment = unchanged.object("Deployment", "controller").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 2, "upstream's count stays");
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(!env.contains("USER_ASSIGNED_MSI_CLIENT_ID"), "{env}");

    let mut req = request(Mode::Standard);
    req.mic_replicas = Some(1);
    if let Some(credentials) = req.cloud.mic_credentials.as_mut() {
        credentials.user_assigned_identity_id = Some("agentpool-client".into());
    }
    let rendered = render(&manifest(STANDARD), &req).unwrap();
    let deployment = rendered.object("Deployment", "controller").unwrap();
    assert_eq!(deployment["spec"]["replicas"], 1);
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    let var = env
        .iter()
        .find(|v| v["name"] == "USER_ASSIGNED_MSI_CLIENT_ID")
        .expect("the cluster identity variable");
    assert_eq!(
        var["valueFrom"]["secretKeyRef"],
        json!({"name": "controller-creds", "key": "UserAssignedMSIClientID"})
    );
    let secret = rendered.object("Secret", "controller-creds").unwrap();
    let encoded = secret["data"]["UserAssignedMSIClientID"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(decoded, b"agentpool-client");
}
