//! Putting rendered objects into a cluster and taking them out again. Server-side apply under
//! one field manager makes applying idempotent (re-applying the same rendering changes
//! nothing; a changed rendering changes exactly what differs, which rolls the workloads),
//! and kinds are mapped to API paths by discovery so any object upstream ships can be applied.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use podid_wait::{Check, Poll};
use serde_json::Value;

use crate::deployment::WorkloadRef;
use crate::error::{InclusterError, is_not_found};
use crate::manifests::{MIC_CONTAINER, RenderedDeployment};
use crate::object::{ObjectKey, apply_rank, in_apply_order, kind_of};

/// The field manager of everything podid applies.
pub const FIELD_MANAGER: &str = "podid";

const CRD_KIND: &str = "CustomResourceDefinition";

/// How long applying may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyOptions {
    /// For applied CRDs to become Established (nothing using them is applied before).
    pub crd_timeout: Duration,
    /// For a namespace still terminating (from an earlier [`remove`]) to be gone before it is
    /// created again; nothing can be created in a terminating namespace.
    pub namespace_timeout: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            crd_timeout: Duration::from_secs(30),
            namespace_timeout: Duration::from_secs(120),
        }
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every object, in the order applied.
    pub applied: Vec<ObjectKey>,
    pub took: Duration,
}

/// Applies `rendered` (see [`apply_objects`]).
pub async fn apply(
    client: &Client,
    rendered: &RenderedDeployment,
    options: &ApplyOptions,
) -> Result<ApplyReport, InclusterError> {
    let report = apply_objects(client, &rendered.objects, options).await?;
    tracing::info!(
        mode = rendered.mode.as_str(),
        namespace = %rendered.namespace,
        objects = report.applied.len(),
        took_ms = report.took.as_millis() as u64,
        "applied NMI{}",
        if rendered.mic.is_some() { " and MIC" } else { "" }
    );
    Ok(report)
}

/// Server-side applies `objects` (field manager [`FIELD_MANAGER`], taking over fields others
/// set) in dependency order, waiting for CRDs to be Established before anything after them.
pub async fn apply_objects(
    client: &Client,
    objects: &[Value],
    options: &ApplyOptions,
) -> Result<ApplyReport, InclusterError> {
    let started = Instant::now();
    let mut resolver = Resolver::new(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::new();
    let mut pending_crds: Vec<String> = Vec::new();
    for object in in_apply_order(objects) {
        let key = ObjectKey::of(object).map_err(|p| InclusterError::render("an object", p))?;
        if !pending_crds.is_empty() && apply_rank(&key.kind) > apply_rank(CRD_KIND) {
            wait_established(client, &pending_crds, options.crd_timeout).await?;
            pending_crds.clear();
        }
        if key.kind == "Namespace" {
            wait_not_terminating(client, &key.name, options.namespace_timeout).await?;
        }
        let api = resolver.api_for(&key).await?;
        api.patch(&key.name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| InclusterError::kube(format!("applying {key}"), e))?;
        tracing::debug!("applied {key}");
        if key.kind == CRD_KIND {
            pending_crds.push(key.name.clone());
        }
        applied.push(key);
    }
    if !pending_crds.is_empty() {
        wait_established(client, &pending_crds, options.crd_timeout).await?;
    }
    Ok(ApplyReport {
        applied,
        took: started.elapsed(),
    })
}

/// Waits until namespace `name` is not being deleted (absent, or present and active).
async fn wait_not_terminating(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<(), InclusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    podid_wait::until(Poll::every(Duration::from_millis(500), timeout), || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await {
                Ok(Some(ns)) if ns.metadata.deletion_timestamp.is_some() => {
                    Check::Pending(format!("namespace {name} is terminating"))
                }
                Ok(_) => Check::Done(()),
                Err(e) => Check::Pending(format!("reading namespace {name}: {e}")),
            }
        }
    })
    .await
    .map_err(|e| InclusterError::NotReady {
        what: format!("namespace {name} to finish terminating"),
        waited: e.waited(),
        detail: e.into_state(),
    })
}

/// Waits until every CRD in `names` has condition `Established=True`.
pub async fn wait_established(
    client: &Client,
    names: &[String],
    timeout: Duration,
) -> Result<(), InclusterError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let poll = Poll::every(Duration::from_millis(200), timeout);
    podid_wait::until(poll, || {
        let api = api.clone();
        async move {
            let mut waiting = Vec::new();
            for name in names {
                match api.get_opt(name).await {
                    Ok(Some(crd)) if is_established(&crd) => {}
                    Ok(Some(_)) => waiting.push(format!("{name} not Established yet")),
                    Ok(None) => waiting.push(format!("{name} does not exist")),
                    Err(e) => waiting.push(format!("{name}: {e}")),
                }
            }
            if waiting.is_empty() {
                Check::Done(())
            } else {
                Check::Pending(waiting.join("; "))
            }
        }
    })
    .await
    .map_err(|e| InclusterError::NotReady {
        what: "CRDs to be Established".into(),
        waited: e.waited(),
        detail: e.into_state(),
    })
}

fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// How [`remove`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Delete the CRDs too. Off by default: deleting a CRD deletes every object of its kind in
    /// the cluster (scenario identities and bindings, other installations' objects).
    pub delete_crds: bool,
    /// For the workloads' pods to be gone.
    pub pods_timeout: Duration,
}

impl Default for RemoveOptions {
    fn default() -> Self {
        Self {
            delete_crds: false,
            pods_timeout: Duration::from_secs(120),
        }
    }
}

/// What [`remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveReport {
    pub deleted: Vec<ObjectKey>,
    /// Objects that were not there (never applied, or removed before).
    pub already_gone: Vec<ObjectKey>,
    pub took: Duration,
}

/// Deletes what [`apply`] created, in reverse dependency order: the workloads first, then,
/// once their pods are gone (so a terminating MIC still has its rights), everything else.
/// MIC's own bookkeeping objects (its leader-election lock and type-upgrade ConfigMap) go too,
/// so a later installation starts as a fresh one instead of waiting out a dead leader's lease.
/// A namespace podid created is deleted but not waited for.
pub async fn remove(
    client: &Client,
    rendered: &RenderedDeployment,
    options: &RemoveOptions,
) -> Result<RemoveReport, InclusterError> {
    let started = Instant::now();
    let mut resolver = Resolver::new(client.clone());
    let mut report = RemoveReport {
        deleted: Vec::new(),
        already_gone: Vec::new(),
        took: Duration::ZERO,
    };
    let mut order = in_apply_order(&rendered.objects);
    order.reverse();
    order.retain(|o| options.delete_crds || kind_of(o) != CRD_KIND);
    let workloads_end = order
        .iter()
        .position(|o| apply_rank(kind_of(o)) < apply_rank("DaemonSet"))
        .unwrap_or(order.len());
    let (workloads, rest) = order.split_at(workloads_end);

    for object in workloads {
        delete_object(&mut resolver, object, &mut report).await?;
    }
    for workload in rendered.workloads() {
        wait_pods_gone(client, &workload, options.pods_timeout).await?;
    }
    for object in rest {
        delete_object(&mut resolver, object, &mut report).await?;
    }
    for key in mic_bookkeeping(rendered) {
        let api = resolver.api_for(&key).await?;
        record_delete(&api, key, &mut report).await?;
    }
    report.took = started.elapsed();
    tracing::info!(
        namespace = %rendered.namespace,
        deleted = report.deleted.len(),
        took_ms = report.took.as_millis() as u64,
        "removed NMI{}",
        if rendered.mic.is_some() { " and MIC" } else { "" }
    );
    Ok(report)
}

async fn delete_object(
    resolver: &mut Resolver,
    object: &Value,
    report: &mut RemoveReport,
) -> Result<(), InclusterError> {
    let key = ObjectKey::of(object).map_err(|p| InclusterError::render("an object", p))?;
    let api = resolver.api_for(&key).await?;
    record_delete(&api, key, report).await
}

async fn record_delete(
    api: &Api<DynamicObject>,
    key: ObjectKey,
    report: &mut RemoveReport,
) -> Result<(), InclusterError> {
    match api.delete(&key.name, &DeleteParams::background()).await {
        Ok(_) => {
            tracing::debug!("deleted {key}");
            report.deleted.push(key);
            Ok(())
        }
        Err(e) if is_not_found(&e) => {
            report.already_gone.push(key);
            Ok(())
        }
        Err(e) => Err(InclusterError::kube(format!("deleting {key}"), e)),
    }
}

/// Waits until no pod of `workload` is left (terminating ones included).
pub async fn wait_pods_gone(
    client: &Client,
    workload: &WorkloadRef,
    timeout: Duration,
) -> Result<(), InclusterError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &workload.namespace);
    let params = ListParams::default().labels(&workload.label_selector());
    podid_wait::until(Poll::every(Duration::from_millis(500), timeout), || {
        let (api, params) = (api.clone(), params.clone());
        async move {
            match api.list(&params).await {
                Ok(pods) if pods.items.is_empty() => Check::Done(()),
                Ok(pods) => Check::Pending(
                    pods.items
                        .iter()
                        .map(|p| {
                            let name = p.metadata.name.clone().unwrap_or_default();
                            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                            let terminating = p.metadata.deletion_timestamp.is_some();
                            format!(
                                "{name} ({}{})",
                                phase.unwrap_or_else(|| "no phase".into()),
                                if terminating { ", terminating" } else { "" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                Err(e) => Check::Pending(format!("listing pods: {e}")),
            }
        }
    })
    .await
    .map_err(|e| InclusterError::NotReady {
        what: format!("pods of {workload} to be gone"),
        waited: e.waited(),
        detail: e.into_state(),
    })
}

/// The objects MIC creates for itself, as its flags name them: the leader-election lock
/// (`Endpoints`) and the ConfigMap recording the type upgrade.
pub fn mic_bookkeeping(rendered: &RenderedDeployment) -> Vec<ObjectKey> {
    let Some(mic) = &rendered.mic else {
        return Vec::new();
    };
    let args: Vec<String> = rendered
        .object("Deployment", &mic.name)
        .and_then(|d| d.pointer("/spec/template/spec/containers"))
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(MIC_CONTAINER))
        })
        .and_then(|c| c.get("args"))
        .and_then(Value::as_array)
        .map(|args| {
            args.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let flag = |name: &str, default: &str| {
        args.iter()
            .rev()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or(default)
            .to_string()
    };
    vec![
        ObjectKey {
            api_version: "v1".into(),
            kind: "Endpoints".into(),
            namespace: Some(flag("leader-election-namespace", "default")),
            name: flag("leader-election-name", "aad-pod-identity-mic"),
        },
        ObjectKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some(mic.namespace.clone()),
            name: flag("config-map-name", "aad-pod-identity-config"),
        },
    ]
}

/// Maps `apiVersion`/`kind` to an API through discovery, once per kind.
struct Resolver {
    client: Client,
    known: HashMap<(String, String), (ApiResource, Scope)>,
}

impl Resolver {
    fn new(client: Client) -> Self {
        Self {
            client,
            known: HashMap::new(),
        }
    }

    async fn api_for(&mut self, key: &ObjectKey) -> Result<Api<DynamicObject>, InclusterError> {
        let id = (key.api_version.clone(), key.kind.clone());
        if !self.known.contains_key(&id) {
            let (group, version) = key.group_version();
            let gvk = GroupVersionKind::gvk(group, version, &key.kind);
            let (resource, capabilities) = kube::discovery::pinned_kind(&self.client, &gvk)
                .await
                .map_err(|e| {
                InclusterError::kube(
                    format!("finding the API of {} {}", key.api_version, key.kind),
                    e,
                )
            })?;
            self.known
                .insert(id.clone(), (resource, capabilities.scope));
        }
        let (resource, scope) = &self.known[&id];
        match (scope, &key.namespace) {
            (Scope::Namespaced, Some(ns)) => {
                Ok(Api::namespaced_with(self.client.clone(), ns, resource))
            }
            (Scope::Namespaced, None) => Err(InclusterError::render(
                key.to_string(),
                "namespaced kind without metadata.namespace",
            )),
            (Scope::Cluster, _) => Ok(Api::all_with(self.client.clone(), resource)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::{Mode, WorkloadKind};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn rendered_with_mic_args(args: &[&str]) -> RenderedDeployment {
        let mic = WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: "mic".into(),
            selector: BTreeMap::from([("component".into(), "mic".into())]),
        };
        RenderedDeployment {
            mode: Mode::Standard,
            namespace: "ns".into(),
            objects: vec![json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "mic", "namespace": "ns"},
                "spec": {"template": {"spec": {"containers": [{"name": "mic", "args": args}]}}}
            })],
            nmi: WorkloadRef {
                kind: WorkloadKind::DaemonSet,
                name: "nmi".into(),
                ..mic.clone()
            },
            mic: Some(mic),
            source: "m.yaml".into(),
        }
    }

    #[test]
    fn mic_bookkeeping_follows_its_flags() {
        let keys = mic_bookkeeping(&rendered_with_mic_args(&[
            "--leader-election-namespace=ns",
            "--config-map-name=cfg",
        ]));
        let names: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            ["Endpoints ns/aad-pod-identity-mic", "ConfigMap ns/cfg"]
        );
        let defaults = mic_bookkeeping(&rendered_with_mic_args(&[]));
        assert_eq!(
            defaults[0].to_string(),
            "Endpoints default/aad-pod-identity-mic"
        );
        assert_eq!(
            defaults[1].to_string(),
            "ConfigMap ns/aad-pod-identity-config"
        );
    }
}
