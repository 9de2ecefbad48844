//! API objects as the runner sees them: JSON values addressed by kind, namespace and name,
//! behind a trait so a cluster side can keep them in a real API server or in memory.

use serde_json::Value;

use super::error::ProviderError;

/// Which object: API version, kind, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// `v1`, `aadpodidentity.k8s.io/v1`, …
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object about to be applied, from its `apiVersion`, `kind` and `metadata`.
    pub fn of_value(value: &Value) -> Result<Self, ProviderError> {
        let field = |path: &[&str]| {
            path.iter()
                .try_fold(value, |v, k| v.get(k))
                .and_then(|v| v.as_str())
                .map(String::from)
        };
        let missing = |what: &str| ProviderError::plain(format!("the object has no {what}"));
        Ok(Self {
            api_version: field(&["apiVersion"]).ok_or_else(|| missing("apiVersion"))?,
            kind: field(&["kind"]).ok_or_else(|| missing("kind"))?,
            namespace: field(&["metadata", "namespace"]),
            name: field(&["metadata", "name"]).ok_or_else(|| missing("metadata.name"))?,
        })
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// The API version within the group.
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version.as_str(), |(_, v)| v)
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The cluster's API objects.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync {
    /// Creates or updates the object (server-side apply) and returns its key.
    async fn apply(&self, object: &Value) -> Result<ObjectKey, ProviderError>;
    /// Deletes at once; returns whether it existed.
    async fn delete(&self, key: &ObjectKey) -> Result<bool, ProviderError>;
    /// Applies a JSON merge patch.
    async fn merge_patch(&self, key: &ObjectKey, patch: &Value) -> Result<(), ProviderError>;
    async fn exists(&self, key: &ObjectKey) -> Result<bool, ProviderError>;
    /// The object as JSON, or `None` when it does not exist.
    async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, ProviderError>;
    /// Every object of `key`'s API version and kind in `key`'s namespace (`key.name` ignored).
    async fn list(&self, key: &ObjectKey) -> Result<Vec<Value>, ProviderError>;
    /// Every pod and aad-pod-identity object of a namespace as JSON, for failure diagnostics
    /// (never Secrets).
    async fn dump_namespace(&self, namespace: &str) -> Value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_come_from_the_object_itself() {
        let key = ObjectKey::of_value(&json!({
            "apiVersion": "aadpodidentity.k8s.io/v1", "kind": "AzureIdentity",
            "metadata": {"name": "id", "namespace": "ns"}
        }))
        .unwrap();
        assert_eq!(key.group(), "aadpodidentity.k8s.io");
        assert_eq!(key.version(), "v1");
        assert_eq!(key.to_string(), "AzureIdentity ns/id");
        let core = ObjectKey::of_value(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
        )
        .unwrap();
        assert_eq!((core.group(), core.version()), ("", "v1"));
        let err = ObjectKey::of_value(&json!({"kind": "Pod"})).unwrap_err();
        assert_eq!(err.to_string(), "the object has no apiVersion");
    }
}
