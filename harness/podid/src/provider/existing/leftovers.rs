//! What a killed run left in an existing cluster, found by podid's `managed-by` label: the run's
//! namespace (node agents, mock cloud, metadata redirects; its agents take their iptables rules
//! out as they stop), the trials' namespaces, and NMI/MIC with their RBAC and CRDs where podid
//! installed them. `podid clean --kubeconfig` removes them.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::provider::error::ProviderError;

/// The selector of everything podid puts in a cluster.
pub fn selector() -> String {
    let (key, value) = podid_incluster::trust::MANAGED_BY_LABEL;
    format!("{key}={value}")
}

/// What was removed, as `kind namespace/name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub objects: Vec<String>,
}

/// How to address one object of a kind: in its namespace, or cluster-wide.
type ApiFor<K> = fn(&kube::Client, Option<&str>) -> Api<K>;

fn namespaced<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client.clone(), ns.unwrap_or("default"))
}

fn cluster<K>(client: &kube::Client, _: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope>,
    K::DynamicType: Default,
{
    Api::all(client.clone())
}

async fn delete_all<K>(
    client: &kube::Client,
    kind: &str,
    api_for: ApiFor<K>,
    removed: &mut Removed,
) -> Result<(), ProviderError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let all: Api<K> = Api::all(client.clone());
    let listed = all
        .list(&ListParams::default().labels(&selector()))
        .await
        .map_err(|e| ProviderError::new(format!("listing podid's {kind}"), e))?;
    for object in listed.items {
        let name = object.name_any();
        let api = api_for(client, object.namespace().as_deref());
        let what = match object.namespace() {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => removed.objects.push(what),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(ProviderError::new(format!("deleting {what}"), e)),
        }
    }
    Ok(())
}

/// Deletes everything labelled as podid's: workloads first (NMI takes its iptables chain out
/// as it stops), then what they used, then namespaces and CRDs.
pub async fn clean(client: &kube::Client) -> Result<Removed, ProviderError> {
    let mut removed = Removed::default();
    delete_all::<DaemonSet>(client, "daemonset", namespaced, &mut removed).await?;
    delete_all::<Deployment>(client, "deployment", namespaced, &mut removed).await?;
    delete_all::<ServiceAccount>(client, "serviceaccount", namespaced, &mut removed).await?;
    delete_all::<Secret>(client, "secret", namespaced, &mut removed).await?;
    delete_all::<ConfigMap>(client, "configmap", namespaced, &mut removed).await?;
    delete_all::<RoleBinding>(client, "rolebinding", namespaced, &mut removed).await?;
    delete_all::<Role>(client, "role", namespaced, &mut removed).await?;
    delete_all::<ClusterRoleBinding>(client, "clusterrolebinding", cluster, &mut removed).await?;
    delete_all::<ClusterRole>(client, "clusterrole", cluster, &mut removed).await?;
    delete_all::<Namespace>(client, "namespace", cluster, &mut removed).await?;
    delete_all::<CustomResourceDefinition>(
        client,
        "customresourcedefinition",
        cluster,
        &mut removed,
    )
    .await?;
    Ok(removed)
}

/// Marks a namespace podid created as podid's, so a killed run's trial namespaces are found.
pub async fn mark_namespace(client: &kube::Client, namespace: &str) -> Result<(), ProviderError> {
    let (key, value) = podid_incluster::trust::MANAGED_BY_LABEL;
    let patch = serde_json::json!({ "metadata": { "labels": { key: value } } });
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(
        namespace,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| ProviderError::new(format!("labelling namespace {namespace}"), e))
}
