//! API objects in a real API server, by kind through discovery (so CRDs and raw manifests go
//! the same way). Every cluster side with a kube-apiserver uses this store.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde_json::Value;

use super::error::ProviderError;
use super::objects::{ObjectKey, ObjectStore};

/// Field manager of podid's server-side applies.
pub const FIELD_MANAGER: &str = "podid";

/// The kinds failure diagnostics list in a namespace (never Secrets).
const DUMPED_KINDS: [(&str, &str, &str); 5] = [
    ("", "v1", "Pod"),
    ("aadpodidentity.k8s.io", "v1", "AzureIdentity"),
    ("aadpodidentity.k8s.io", "v1", "AzureIdentityBinding"),
    ("aadpodidentity.k8s.io", "v1", "AzurePodIdentityException"),
    ("aadpodidentity.k8s.io", "v1", "AzureAssignedIdentity"),
];

/// Objects in the API server behind `client`; API resources are discovered once per kind.
pub struct KubeObjects {
    client: kube::Client,
    known: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

fn gvk(key: &ObjectKey) -> GroupVersionKind {
    GroupVersionKind::gvk(key.group(), key.version(), &key.kind)
}

impl KubeObjects {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            known: Mutex::new(HashMap::new()),
        }
    }

    async fn resolve(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, ApiCapabilities), ProviderError> {
        if let Some(found) = self.known.lock().expect("kinds lock").get(gvk) {
            return Ok(found.clone());
        }
        let found = kube::discovery::pinned_kind(&self.client, gvk)
            .await
            .map_err(|e| {
                ProviderError::new(
                    format!("looking up {}/{} {}", gvk.group, gvk.version, gvk.kind),
                    e,
                )
            })?;
        self.known
            .lock()
            .expect("kinds lock")
            .insert(gvk.clone(), found.clone());
        Ok(found)
    }

    /// A dynamic API handle for `gvk`, namespaced when the kind is.
    async fn api(
        &self,
        gvk: &GroupVersionKind,
        namespace: Option<&str>,
    ) -> Result<(Api<DynamicObject>, ApiResource), ProviderError> {
        let (resource, caps) = self.resolve(gvk).await?;
        let api = match (caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(self.client.clone(), ns, &resource)
            }
            _ => Api::all_with(self.client.clone(), &resource),
        };
        Ok((api, resource))
    }
}

#[async_trait::async_trait]
impl ObjectStore for KubeObjects {
    async fn apply(&self, object: &Value) -> Result<ObjectKey, ProviderError> {
        let key = ObjectKey::of_value(object)?;
        let (api, _) = self.api(&gvk(&key), key.namespace.as_deref()).await?;
        api.patch(
            &key.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
        .map_err(|e| ProviderError::new(format!("applying {key}"), e))?;
        Ok(key)
    }

    /// Grace period 0, background propagation: there is no garbage collector to wait for.
    async fn delete(&self, key: &ObjectKey) -> Result<bool, ProviderError> {
        let (api, _) = self.api(&gvk(key), key.namespace.as_deref()).await?;
        match api
            .delete(&key.name, &DeleteParams::background().grace_period(0))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
            Err(e) => Err(ProviderError::new(format!("deleting {key}"), e)),
        }
    }

    async fn merge_patch(&self, key: &ObjectKey, patch: &Value) -> Result<(), ProviderError> {
        let (api, _) = self.api(&gvk(key), key.namespace.as_deref()).await?;
        api.patch(&key.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| ProviderError::new(format!("patching {key}"), e))
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool, ProviderError> {
        let (api, _) = self.api(&gvk(key), key.namespace.as_deref()).await?;
        api.get_opt(&key.name)
            .await
            .map(|o| o.is_some())
            .map_err(|e| ProviderError::new(format!("reading {key}"), e))
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, ProviderError> {
        let (api, _) = self.api(&gvk(key), key.namespace.as_deref()).await?;
        let found = api
            .get_opt(&key.name)
            .await
            .map_err(|e| ProviderError::new(format!("reading {key}"), e))?;
        Ok(found.map(|o| serde_json::to_value(&o).unwrap_or(Value::Null)))
    }

    async fn list(&self, key: &ObjectKey) -> Result<Vec<Value>, ProviderError> {
        let (api, _) = self.api(&gvk(key), key.namespace.as_deref()).await?;
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| ProviderError::new(format!("listing {}", key.kind), e))?;
        Ok(list
            .items
            .iter()
            .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
            .collect())
    }

    async fn dump_namespace(&self, namespace: &str) -> Value {
        let mut out = Vec::new();
        for (group, version, kind) in DUMPED_KINDS {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let Ok((api, resource)) = self.api(&gvk, Some(namespace)).await else {
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
}
