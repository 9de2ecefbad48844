//! Kubernetes objects from the scenario shorthand, and applying/deleting/patching them through
//! the API server by kind (discovery-based, so CRDs and raw manifests go the same way).

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use podid_scenario::reference::{self, RenderError};
use podid_scenario::{Cluster, ObjectKind};
use serde_json::{Value, json};

use crate::instance::ScenarioInstance;

/// Label put on everything podid creates, for sweeping leftovers.
pub const RUN_LABEL: &str = "podid.io/run";
pub const SCENARIO_LABEL: &str = "podid.io/scenario";
pub const FIELD_MANAGER: &str = "podid";
pub const API_GROUP: &str = "aadpodidentity.k8s.io/v1";

/// API version and kind for the kinds steps can name.
pub fn gvk_of(kind: ObjectKind) -> GroupVersionKind {
    let (group, version, kind) = match kind {
        ObjectKind::Pod => ("", "v1", "Pod"),
        ObjectKind::Secret => ("", "v1", "Secret"),
        ObjectKind::Namespace => ("", "v1", "Namespace"),
        ObjectKind::AzureIdentity => ("aadpodidentity.k8s.io", "v1", "AzureIdentity"),
        ObjectKind::AzureIdentityBinding => ("aadpodidentity.k8s.io", "v1", "AzureIdentityBinding"),
        ObjectKind::AzurePodIdentityException => {
            ("aadpodidentity.k8s.io", "v1", "AzurePodIdentityException")
        }
        ObjectKind::AzureAssignedIdentity => {
            ("aadpodidentity.k8s.io", "v1", "AzureAssignedIdentity")
        }
    };
    GroupVersionKind::gvk(group, version, kind)
}

fn render(text: &str, inst: &ScenarioInstance) -> Result<String, RenderError> {
    reference::render(text, inst)
}

fn render_map<'a>(
    map: impl Iterator<Item = (&'a String, &'a podid_scenario::Template)>,
    inst: &ScenarioInstance,
) -> Result<serde_json::Map<String, Value>, RenderError> {
    map.map(|(k, v)| Ok((k.clone(), Value::String(render(v, inst)?))))
        .collect()
}

fn metadata(name: &str, namespace: &str, inst: &ScenarioInstance) -> Value {
    json!({
        "name": name,
        "namespace": namespace,
        "labels": { RUN_LABEL: inst.run_id, SCENARIO_LABEL: inst.scenario },
    })
}

/// The non-pod objects of a `cluster`/`apply` section, in creation order (namespaces first,
/// identities before bindings), as JSON ready to apply.
pub fn objects_of(cluster: &Cluster, inst: &ScenarioInstance) -> Result<Vec<Value>, RenderError> {
    let mut out = Vec::new();
    for (name, secret) in &cluster.secrets {
        let ns = inst.namespace_for(secret.namespace.as_ref().map(|n| n.as_str()));
        out.push(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": metadata(name, &ns, inst),
            "type": "Opaque",
            "stringData": render_map(secret.string_data.iter(), inst)?,
        }));
    }
    for (name, ai) in &cluster.azure_identities {
        let ns = inst.namespace_for(ai.namespace.as_ref().map(|n| n.as_str()));
        let mut spec = serde_json::Map::new();
        if let Some(id) = ai
            .identity
            .as_ref()
            .and_then(|i| inst.identities.get(i.as_str()))
        {
            spec.insert("type".into(), json!(0));
            spec.insert("clientID".into(), json!(id.client_id));
            spec.insert("resourceID".into(), json!(id.resource_id));
        }
        if let Some(sp) = ai
            .service_principal
            .as_ref()
            .and_then(|s| inst.service_principals.get(s.as_str()))
        {
            spec.insert("type".into(), json!(1));
            spec.insert("clientID".into(), json!(sp.client_id));
            spec.insert("tenantID".into(), json!(inst.tenant_id));
            spec.insert(
                "clientPassword".into(),
                json!({"name": format!("{name}-secret"), "namespace": ns}),
            );
        }
        if let Some(c) = &ai.client_id {
            spec.insert("clientID".into(), json!(render(c, inst)?));
            spec.entry("type").or_insert(json!(0));
        }
        if let Some(r) = &ai.resource_id {
            spec.insert("resourceID".into(), json!(render(r, inst)?));
        }
        let mut md = metadata(name, &ns, inst);
        if !ai.annotations.is_empty() {
            md["annotations"] = Value::Object(render_map(ai.annotations.iter(), inst)?);
        }
        out.push(json!({
            "apiVersion": API_GROUP, "kind": "AzureIdentity",
            "metadata": md,
            "spec": spec,
        }));
    }
    for (name, b) in &cluster.azure_identity_bindings {
        let ns = inst.namespace_for(b.namespace.as_ref().map(|n| n.as_str()));
        out.push(json!({
            "apiVersion": API_GROUP, "kind": "AzureIdentityBinding",
            "metadata": metadata(name, &ns, inst),
            "spec": { "azureIdentity": b.azure_identity.value, "selector": render(&b.selector, inst)? },
        }));
    }
    for (name, e) in &cluster.azure_pod_identity_exceptions {
        let ns = inst.namespace_for(e.namespace.as_ref().map(|n| n.as_str()));
        out.push(json!({
            "apiVersion": API_GROUP, "kind": "AzurePodIdentityException",
            "metadata": metadata(name, &ns, inst),
            "spec": { "podLabels": render_map(e.pod_labels.iter(), inst)? },
        }));
    }
    for m in &cluster.manifests {
        let mut value = reference::render_json(&m.value, inst)?;
        if let Some(md) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            md.entry("namespace")
                .or_insert_with(|| Value::String(inst.namespace.clone()));
        }
        out.push(value);
    }
    Ok(out)
}

/// API resources by kind, looked up once per run (discovery is a round-trip per kind).
#[derive(Default)]
pub struct Kinds {
    known: std::sync::Mutex<
        std::collections::HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
    >,
}

impl Kinds {
    /// The API resource serving `gvk`.
    pub async fn resolve(
        &self,
        client: &kube::Client,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, ApiCapabilities), String> {
        if let Some(found) = self.known.lock().expect("kinds lock").get(gvk) {
            return Ok(found.clone());
        }
        let found = kube::discovery::pinned_kind(client, gvk)
            .await
            .map_err(|e| format!("looking up {}/{} {}: {e}", gvk.group, gvk.version, gvk.kind))?;
        self.known
            .lock()
            .expect("kinds lock")
            .insert(gvk.clone(), found.clone());
        Ok(found)
    }

    /// A dynamic API handle for `gvk`, namespaced when the kind is.
    pub async fn api(
        &self,
        client: &kube::Client,
        gvk: &GroupVersionKind,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, ApiResource), String> {
        let (resource, caps) = self.resolve(client, gvk).await?;
        let api = match (caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        Ok((api, resource))
    }

    async fn api_of(
        &self,
        client: &kube::Client,
        kind: ObjectKind,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, String> {
        let ns = kind.is_namespaced().then_some(namespace);
        Ok(self.api(client, &gvk_of(kind), ns).await?.0)
    }
}

fn gvk_of_value(value: &Value) -> Result<GroupVersionKind, String> {
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .ok_or("object without apiVersion")?;
    let kind = value
        .get("kind")
        .and_then(|v| v.as_str())
        .ok_or("object without kind")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Ok(GroupVersionKind::gvk(group, version, kind))
}

/// Creates or updates an object (server-side apply).
pub async fn apply(kinds: &Kinds, client: &kube::Client, value: &Value) -> Result<(), String> {
    let (gvk, namespace, name) = identity_of(value)?;
    let (api, _) = kinds.api(client, &gvk, namespace.as_deref()).await?;
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(value),
    )
    .await
    .map(|_| ())
    .map_err(|e| {
        format!(
            "applying {} {}: {e}",
            gvk.kind,
            qualified(namespace.as_deref(), &name)
        )
    })
}

fn qualified(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

/// Deletes an object immediately (grace period 0, background propagation: there is no
/// garbage collector to wait for). Returns whether it existed.
pub async fn delete(
    kinds: &Kinds,
    client: &kube::Client,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
) -> Result<bool, String> {
    let ns = kind.is_namespaced().then_some(namespace);
    delete_object(kinds, client, &gvk_of(kind), ns, name).await
}

/// Deletes an object of any kind, as [`delete`] does.
pub async fn delete_object(
    kinds: &Kinds,
    client: &kube::Client,
    gvk: &GroupVersionKind,
    namespace: Option<&str>,
    name: &str,
) -> Result<bool, String> {
    let (api, _) = kinds.api(client, gvk, namespace).await?;
    let params = DeleteParams::background().grace_period(0);
    match api.delete(name, &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(format!(
            "deleting {} {}: {e}",
            gvk.kind,
            qualified(namespace, name)
        )),
    }
}

/// The kind, namespace and name of an object about to be applied.
pub fn identity_of(value: &Value) -> Result<(GroupVersionKind, Option<String>, String), String> {
    let gvk = gvk_of_value(value)?;
    let name = value["metadata"]["name"]
        .as_str()
        .ok_or("object without metadata.name")?
        .to_string();
    let namespace = value["metadata"]["namespace"].as_str().map(String::from);
    Ok((gvk, namespace, name))
}

/// Applies a JSON merge patch.
pub async fn merge_patch(
    kinds: &Kinds,
    client: &kube::Client,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<(), String> {
    let api = kinds.api_of(client, kind, namespace).await?;
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "patching {kind:?} {}: {e}",
                qualified(Some(namespace), name)
            )
        })
}

/// Whether an object exists now.
pub async fn exists(
    kinds: &Kinds,
    client: &kube::Client,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
) -> Result<bool, String> {
    let api = kinds.api_of(client, kind, namespace).await?;
    api.get_opt(name)
        .await
        .map(|o| o.is_some())
        .map_err(|e| format!("reading {kind:?} {}: {e}", qualified(Some(namespace), name)))
}

/// Every object of the identity-related kinds in a namespace, as JSON (managedFields dropped),
/// for failure diagnostics. Secrets are never included.
pub async fn dump_namespace(kinds: &Kinds, client: &kube::Client, namespace: &str) -> Value {
    let mut out = Vec::new();
    for kind in [
        ObjectKind::Pod,
        ObjectKind::AzureIdentity,
        ObjectKind::AzureIdentityBinding,
        ObjectKind::AzurePodIdentityException,
    ] {
        let Ok((api, resource)) = kinds.api(client, &gvk_of(kind), Some(namespace)).await else {
            continue;
        };
        if let Ok(list) = api.list(&Default::default()).await {
            for mut obj in list.items {
                obj.metadata.managed_fields = None;
                obj.types.get_or_insert_with(|| kube::api::TypeMeta {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                });
                out.push(serde_json::to_value(&obj).unwrap_or(Value::Null));
            }
        }
    }
    Value::Array(out)
}
