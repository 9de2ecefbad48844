//! What podid installs into a cluster that runs no NMI: upstream's pinned manifests rendered by
//! podid-incluster for one mode, namespace, flags, images and cloud, every object labelled
//! `app.kubernetes.io/managed-by: podid` so discovery (and a later clean-up) tells it from
//! someone else's installation. A server-side dry run proves the cluster would accept it
//! before anything is created; installing and removing are podid-incluster's apply and remove.

use std::collections::HashMap;
use std::path::Path;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use podid_incluster::object::{apply_rank, in_apply_order};
use podid_incluster::trust::MANAGED_BY_LABEL;
use podid_incluster::{
    ApplyOptions, ApplyReport, CloudAccess, FIELD_MANAGER, IdentityDeployment, ImagePullPolicy,
    InclusterError, Manifest, Mode, ObjectKey, RemoveOptions, RemoveReport, RenderedDeployment,
};
use serde_json::Value;

use super::preflight::describe_kube_error;

/// NMI's image unless the user names another: the pinned release from Microsoft's registry.
pub const DEFAULT_NMI_IMAGE: &str = "mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17";
/// MIC's image unless the user names another.
pub const DEFAULT_MIC_IMAGE: &str = "mcr.microsoft.com/oss/azure/aad-pod-identity/mic:v1.8.17";

/// What to install: upstream's deployment of NMI (and MIC), as the renderer takes it.
pub type InstallRequest = IdentityDeployment;

/// The pinned images, upstream's flags and replicas, CRDs included, pulled when missing.
pub fn install_request(
    mode: Mode,
    namespace: impl Into<String>,
    cloud: CloudAccess,
) -> InstallRequest {
    IdentityDeployment {
        mode,
        namespace: namespace.into(),
        nmi_image: DEFAULT_NMI_IMAGE.into(),
        mic_image: DEFAULT_MIC_IMAGE.into(),
        nmi_flags: Vec::new(),
        mic_flags: Vec::new(),
        mic_replicas: None,
        cloud,
        image_pull_policy: ImagePullPolicy::IfNotPresent,
        install_crds: true,
    }
}

/// The rendered objects podid would install, labelled as podid's.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallPlan {
    pub request: InstallRequest,
    /// What [`podid_incluster::apply`] and [`podid_incluster::remove`] take.
    pub rendered: RenderedDeployment,
}

/// Rendering or checking the installation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("rendering upstream's NMI/MIC manifests for {mode} mode in {namespace}: {source}")]
    Render {
        mode: &'static str,
        namespace: String,
        #[source]
        source: InclusterError,
    },
    #[error("{action}: {cause}")]
    Kube { action: String, cause: String },
}

impl InstallPlan {
    /// Renders `request` from the pinned aad-pod-identity module at `module_dir`.
    pub fn render(module_dir: &Path, request: &InstallRequest) -> Result<Self, InstallError> {
        let manifest = Manifest::for_mode(module_dir, request.mode)
            .map_err(|source| render_error(request, source))?;
        Self::from_manifest(&manifest, request)
    }

    /// Renders `request` from an already loaded manifest.
    pub fn from_manifest(
        manifest: &Manifest,
        request: &InstallRequest,
    ) -> Result<Self, InstallError> {
        let mut rendered = podid_incluster::render(manifest, request)
            .map_err(|source| render_error(request, source))?;
        for object in &mut rendered.objects {
            label_as_podids(object);
        }
        Ok(Self {
            request: request.clone(),
            rendered,
        })
    }

    /// The objects, in the order they are applied.
    pub fn keys(&self) -> Vec<ObjectKey> {
        in_apply_order(&self.rendered.objects)
            .into_iter()
            .filter_map(|o| ObjectKey::of(o).ok())
            .collect()
    }

    /// One line for logs and the report: `NMI and MIC (standard mode) in podid-system from
    /// mcr.microsoft.com/…/nmi:v1.8.17 and …/mic:v1.8.17, 14 objects`.
    pub fn describe(&self) -> String {
        let r = &self.request;
        let what = match r.mode {
            Mode::Managed => format!("NMI (managed mode) in {} from {}", r.namespace, r.nmi_image),
            Mode::Standard => format!(
                "NMI and MIC (standard mode) in {} from {} and {}",
                r.namespace, r.nmi_image, r.mic_image
            ),
        };
        format!("{what}, {} objects", self.rendered.objects.len())
    }
}

fn render_error(request: &InstallRequest, source: InclusterError) -> InstallError {
    InstallError::Render {
        mode: request.mode.as_str(),
        namespace: request.namespace.clone(),
        source,
    }
}

/// Adds podid's `managed-by` label to the object's own labels (not its pod template's: the
/// selectors stay upstream's).
pub fn label_as_podids(object: &mut Value) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if !labels.is_object() {
        *labels = Value::Object(Default::default());
    }
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(
            MANAGED_BY_LABEL.0.to_string(),
            Value::String(MANAGED_BY_LABEL.1.to_string()),
        );
    }
}

/// Installs the plan (podid-incluster's server-side apply in dependency order).
pub async fn install(
    client: &kube::Client,
    plan: &InstallPlan,
    options: &ApplyOptions,
) -> Result<ApplyReport, InclusterError> {
    podid_incluster::apply(client, &plan.rendered, options).await
}

/// Removes what [`install`] created (CRDs only if `options` says so).
pub async fn uninstall(
    client: &kube::Client,
    plan: &InstallPlan,
    options: &RemoveOptions,
) -> Result<RemoveReport, InclusterError> {
    podid_incluster::remove(client, &plan.rendered, options).await
}

/// What the API server said about one object in a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DryRunOutcome {
    /// It would be created (or updated) as is.
    Accepted,
    /// It could not be checked: it goes into a namespace the plan creates, or is of a kind
    /// the plan's CRDs define; nothing exists yet to check it against.
    Unverified(String),
    /// The API server refuses it (validation, admission, RBAC escalation, permissions).
    Rejected(String),
}

/// One object's dry-run answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunResult {
    pub object: ObjectKey,
    pub outcome: DryRunOutcome,
}

/// Every object's dry-run answer, in apply order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DryRunReport {
    pub results: Vec<DryRunResult>,
}

impl DryRunReport {
    /// Whether nothing was rejected.
    pub fn accepted(&self) -> bool {
        self.rejected().next().is_none()
    }

    /// The rejected objects and why.
    pub fn rejected(&self) -> impl Iterator<Item = (&ObjectKey, &str)> {
        self.results.iter().filter_map(|r| match &r.outcome {
            DryRunOutcome::Rejected(why) => Some((&r.object, why.as_str())),
            _ => None,
        })
    }

    /// One line: `14 objects: 12 accepted, 2 unverified` or the first rejections.
    pub fn summary(&self) -> String {
        let count =
            |f: fn(&DryRunOutcome) -> bool| self.results.iter().filter(|r| f(&r.outcome)).count();
        let accepted = count(|o| matches!(o, DryRunOutcome::Accepted));
        let unverified = count(|o| matches!(o, DryRunOutcome::Unverified(_)));
        let rejected: Vec<String> = self
            .rejected()
            .map(|(key, why)| format!("{key}: {why}"))
            .collect();
        let mut text = format!(
            "{} objects: {accepted} accepted, {unverified} unverified, {} rejected",
            self.results.len(),
            rejected.len()
        );
        if !rejected.is_empty() {
            text.push_str(" (");
            text.push_str(&rejected.join("; "));
            text.push(')');
        }
        text
    }
}

/// Server-side applies every object of `plan` with `dryRun=All`: the API server validates,
/// admits and authorises each exactly as a real install would, and stores nothing.
pub async fn dry_run(
    client: &kube::Client,
    plan: &InstallPlan,
) -> Result<DryRunReport, InstallError> {
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let namespace = &plan.rendered.namespace;
    let namespace_exists = namespace_exists(client, namespace).await?;
    let crd_groups: Vec<String> = plan
        .rendered
        .objects_of_kind("CustomResourceDefinition")
        .filter_map(|crd| crd.pointer("/spec/group").and_then(Value::as_str))
        .map(str::to_string)
        .collect();
    let mut apis = ApiCache::new(client.clone());
    let mut report = DryRunReport::default();
    for object in in_apply_order(&plan.rendered.objects) {
        let key = ObjectKey::of(object).map_err(|problem| InstallError::Kube {
            action: "reading a rendered object".into(),
            cause: problem,
        })?;
        let outcome = if key.namespace.as_deref() == Some(namespace.as_str())
            && namespace_exists == Some(false)
            && apply_rank(&key.kind) > apply_rank("Namespace")
        {
            DryRunOutcome::Unverified(format!("namespace {namespace} does not exist yet"))
        } else {
            match apis.api_for(&key).await {
                Err(e) if crd_groups.iter().any(|g| g == key.group_version().0) => {
                    DryRunOutcome::Unverified(format!(
                        "its kind comes with the plan's CRDs ({})",
                        describe_kube_error(&e)
                    ))
                }
                Err(e) => {
                    return Err(InstallError::Kube {
                        action: format!("finding the API of {key}"),
                        cause: describe_kube_error(&e),
                    });
                }
                Ok(api) => match api.patch(&key.name, &params, &Patch::Apply(object)).await {
                    Ok(_) => DryRunOutcome::Accepted,
                    Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => {
                        DryRunOutcome::Rejected(describe_kube_error(&kube::Error::Api(status)))
                    }
                    Err(e) => {
                        return Err(InstallError::Kube {
                            action: format!("dry-running {key}"),
                            cause: describe_kube_error(&e),
                        });
                    }
                },
            }
        };
        tracing::debug!("dry run of {key}: {outcome:?}");
        report.results.push(DryRunResult {
            object: key,
            outcome,
        });
    }
    Ok(report)
}

/// Whether namespace `name` exists; `None` when the caller may not look (the dry run then
/// tries everything and the API server says what it refuses).
async fn namespace_exists(client: &kube::Client, name: &str) -> Result<Option<bool>, InstallError> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    match api.get_opt(name).await {
        Ok(namespace) => Ok(Some(namespace.is_some())),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(None),
        Err(e) => Err(InstallError::Kube {
            action: format!("looking up namespace {name}"),
            cause: describe_kube_error(&e),
        }),
    }
}

/// Maps `apiVersion`/`kind` to a dynamic API through discovery, once per kind.
struct ApiCache {
    client: kube::Client,
    known: HashMap<(String, String), (ApiResource, Scope)>,
}

impl ApiCache {
    fn new(client: kube::Client) -> Self {
        Self {
            client,
            known: HashMap::new(),
        }
    }

    async fn api_for(&mut self, key: &ObjectKey) -> Result<Api<DynamicObject>, kube::Error> {
        let id = (key.api_version.clone(), key.kind.clone());
        if !self.known.contains_key(&id) {
            let (group, version) = key.group_version();
            let gvk = GroupVersionKind::gvk(group, version, &key.kind);
            let (resource, capabilities) = kube::discovery::pinned_kind(&self.client, &gvk).await?;
            self.known
                .insert(id.clone(), (resource, capabilities.scope));
        }
        let (resource, scope) = &self.known[&id];
        Ok(match (scope, &key.namespace) {
            (Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, resource)
            }
            _ => Api::all_with(self.client.clone(), resource),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

    use podid_incluster::MicCredentials;

    use super::*;

    use podid_toolchain::AAD_POD_IDENTITY_DIR_VAR as MODULE_DIR_VAR;

    /// The pinned aad-pod-identity module: `PODID_AAD_POD_IDENTITY_DIR`, else the toolchain
    /// cache's Go module copy (`podid toolchain --kind` downloads it). `None` (the test passes
    /// without checking) only when `PODID_SKIP_E2E` says this machine has no toolchain.
    fn module_dir() -> Option<PathBuf> {
        let dir = podid_toolchain::ToolchainConfig::from_env().aad_pod_identity_module_dir();
        if dir.is_dir() {
            return Some(dir);
        }
        let skip = std::env::var("PODID_SKIP_E2E").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            skip,
            "the aad-pod-identity module is not at {} (run `podid toolchain --kind`, or set \
             {MODULE_DIR_VAR}; PODID_SKIP_E2E=1 skips this on machines without the toolchain)",
            dir.display()
        );
        eprintln!("PODID_SKIP_E2E is set and the module is missing: not checking the rendering");
        None
    }

    fn cloud() -> CloudAccess {
        CloudAccess {
            host_aliases: vec![(
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
                vec!["login.microsoftonline.com".into()],
            )],
            ca_bundle_pem: Some(
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            ),
            mic_credentials: Some(MicCredentials {
                cloud: "AzurePublicCloud".into(),
                tenant_id: "00000000-0000-0000-0000-00000000000a".into(),
                subscription_id: "00000000-0000-0000-0000-00000000000b".into(),
                resource_group: "MC_podid_nodes".into(),
                client_id: "00000000-0000-0000-0000-00000000000c".into(),
                client_secret: "not-a-secret".into(),
                vm_type: "vmss".into(),
                user_assigned_identity_id: None,
            }),
        }
    }

    /// The plan as YAML with Secret values replaced: the snapshot shows which keys MIC's
    /// Secret carries, never what.
    fn snapshot_text(plan: &InstallPlan) -> String {
        let mut rendered = plan.rendered.clone();
        for object in &mut rendered.objects {
            if object.get("kind").and_then(Value::as_str) == Some("Secret") {
                for field in ["data", "stringData"] {
                    if let Some(values) = object.get_mut(field).and_then(Value::as_object_mut) {
                        for value in values.values_mut() {
                            *value = Value::String("<redacted>".into());
                        }
                    }
                }
            }
        }
        rendered.to_yaml().expect("renders as YAML")
    }

    #[test]
    fn the_default_images_are_the_pinned_release() {
        for image in [DEFAULT_NMI_IMAGE, DEFAULT_MIC_IMAGE] {
            assert!(
                image.ends_with(&format!(":{}", podid_toolchain::AAD_POD_IDENTITY_VERSION)),
                "{image}"
            );
        }
    }

    #[test]
    fn standard_mode_in_its_own_namespace() {
        let Some(dir) = module_dir() else { return };
        let mut request = install_request(Mode::Standard, "podid-system", cloud());
        request.nmi_flags = vec!["--metadata-header-required=true".into()];
        request.mic_flags = vec!["--syncRetryDuration=30s".into()];
        request.mic_replicas = Some(1);
        let plan = InstallPlan::render(&dir, &request).expect("the pinned module renders");
        assert!(
            plan.rendered.objects.iter().all(|o| {
                o.pointer("/metadata/labels/app.kubernetes.io~1managed-by")
                    .and_then(Value::as_str)
                    == Some("podid")
            }),
            "every object is labelled as podid's"
        );
        assert_eq!(
            plan.keys().first().map(ToString::to_string).as_deref(),
            Some("Namespace podid-system")
        );
        assert!(plan.describe().starts_with(
            "NMI and MIC (standard mode) in podid-system from mcr.microsoft.com/oss/azure/aad-pod-identity/nmi:v1.8.17 and"
        ));
        insta::assert_snapshot!(snapshot_text(&plan));
    }

    #[test]
    fn managed_mode_in_kube_system() {
        let Some(dir) = module_dir() else { return };
        let mut request = install_request(Mode::Managed, "kube-system", CloudAccess::default());
        request.install_crds = false;
        let plan = InstallPlan::render(&dir, &request).expect("the pinned module renders");
        assert!(plan.rendered.mic.is_none());
        assert!(plan.rendered.crd_names().is_empty());
        assert!(plan.rendered.object("Namespace", "kube-system").is_none());
        insta::assert_snapshot!(snapshot_text(&plan));
    }

    #[test]
    fn labels_are_added_beside_upstreams() {
        let mut object = serde_json::json!({"kind": "ServiceAccount", "metadata": {"name": "a", "labels": {"k8s-app": "aad-pod-id"}}});
        label_as_podids(&mut object);
        assert_eq!(
            object["metadata"]["labels"],
            serde_json::json!({"k8s-app": "aad-pod-id", "app.kubernetes.io/managed-by": "podid"})
        );
        let mut bare = serde_json::json!({"kind": "Namespace", "metadata": {"name": "b"}});
        label_as_podids(&mut bare);
        assert_eq!(
            bare["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "podid"
        );
    }
}
