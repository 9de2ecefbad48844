//! Manifest objects as plain JSON: upstream's YAML is read into `serde_json::Value` so that
//! whatever it holds survives rendering untouched, and only the fields podid changes are
//! touched. These helpers read the identifying fields.

use serde_json::Value;

/// Identifies one object: enough to find it with a dynamic API and to name it in messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects (as written in the manifest).
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// The key of `object`, or a description of what it lacks.
    pub fn of(object: &Value) -> Result<Self, String> {
        let field = |path: &[&str]| -> Option<String> {
            let mut at = object;
            for part in path {
                at = at.get(part)?;
            }
            at.as_str().map(str::to_string)
        };
        let kind = field(&["kind"]).ok_or("an object without `kind`")?;
        let api_version =
            field(&["apiVersion"]).ok_or_else(|| format!("a {kind} without `apiVersion`"))?;
        let name = field(&["metadata", "name"])
            .ok_or_else(|| format!("a {kind} without `metadata.name`"))?;
        Ok(Self {
            api_version,
            kind,
            namespace: field(&["metadata", "namespace"]),
            name,
        })
    }

    /// `(group, version)` of the `apiVersion` (the core group is `""`).
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", self.api_version.as_str()),
        }
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

/// The object's `kind`, or `""`.
pub fn kind_of(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// The object's `metadata.name`, or `""`.
pub fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Where an object goes in the apply order: what others depend on first. Namespaces hold
/// everything; CRDs must be Established before anything uses them; service accounts and RBAC
/// before the pods that run as them (a pod created before its role binding starts failing its
/// first API calls); ConfigMaps and Secrets before the pods that mount them; workloads last.
/// Removal runs the same order backwards.
pub fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" => 2,
        "ClusterRole" | "Role" => 3,
        "ClusterRoleBinding" | "RoleBinding" => 4,
        "ConfigMap" | "Secret" => 5,
        "DaemonSet" | "Deployment" | "StatefulSet" | "ReplicaSet" | "Pod" => 7,
        _ => 6,
    }
}

/// `objects` in apply order (stable: the manifest's order within a rank).
pub fn in_apply_order(objects: &[Value]) -> Vec<&Value> {
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| apply_rank(kind_of(o)));
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_split_group_and_version() {
        let key = ObjectKey::of(&json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "nmi", "namespace": "ns"}
        }))
        .unwrap();
        assert_eq!(key.group_version(), ("apps", "v1"));
        assert_eq!(key.to_string(), "DaemonSet ns/nmi");
        let core = ObjectKey::of(&json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}
        }))
        .unwrap();
        assert_eq!(core.group_version(), ("", "v1"));
        assert_eq!(core.to_string(), "Namespace x");
    }

    #[test]
    fn a_key_needs_kind_version_and_name() {
        let err = ObjectKey::of(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}}));
        assert_eq!(err.unwrap_err(), "a Secret without `metadata.name`");
    }

    #[test]
    fn apply_order_puts_dependencies_first_and_keeps_manifest_order_within_a_rank() {
        let objects: Vec<Value> = [
            ("DaemonSet", "nmi"),
            ("ServiceAccount", "a"),
            ("CustomResourceDefinition", "c"),
            ("ClusterRoleBinding", "b"),
            ("Secret", "s"),
            ("ServiceAccount", "z"),
            ("ClusterRole", "r"),
            ("Namespace", "n"),
            ("Deployment", "mic"),
        ]
        .iter()
        .map(|(k, n)| json!({"kind": k, "metadata": {"name": n}}))
        .collect();
        let order: Vec<&str> = in_apply_order(&objects).into_iter().map(name_of).collect();
        assert_eq!(order, ["n", "c", "a", "z", "r", "b", "s", "nmi", "mic"]);
    }
}
