//! Kubernetes objects from the scenario shorthand, as JSON ready for a cluster side's object
//! store, and the keys of the kinds steps can name.

use podid_scenario::reference::{self, RenderError};
use podid_scenario::{Cluster, ObjectKind};
use serde_json::{Value, json};

use crate::instance::ScenarioInstance;
use crate::provider::ObjectKey;
use crate::provider::cloud::ServicePrincipalCredential;

/// Label put on everything podid creates, for sweeping leftovers.
pub const RUN_LABEL: &str = "podid.io/run";
pub const SCENARIO_LABEL: &str = "podid.io/scenario";
pub const API_GROUP: &str = "aadpodidentity.k8s.io/v1";
/// The pod label NMI and MIC match binding selectors against.
pub const BINDING_LABEL: &str = "aadpodidbinding";

/// Makes the binding selector or `aadpodidbinding` label in an object (or a merge patch of
/// one) of `kind` the trial's own, wherever the scenario wrote it: shorthand, raw manifest or
/// patch all name the same selector.
pub fn with_trial_selectors(kind: &str, value: &mut Value, inst: &ScenarioInstance) {
    let path: &[&str] = match kind {
        "AzureIdentityBinding" => &["spec", "selector"],
        "Pod" => &["metadata", "labels", BINDING_LABEL],
        _ => return,
    };
    let Some(Value::String(written)) = path.iter().try_fold(&mut *value, |v, k| v.get_mut(*k))
    else {
        return;
    };
    *written = inst.selector(written);
}

/// API version and kind of the kinds steps can name.
pub fn api_version_and_kind(kind: ObjectKind) -> (&'static str, &'static str) {
    match kind {
        ObjectKind::Pod => ("v1", "Pod"),
        ObjectKind::Secret => ("v1", "Secret"),
        ObjectKind::Namespace => ("v1", "Namespace"),
        ObjectKind::AzureIdentity => (API_GROUP, "AzureIdentity"),
        ObjectKind::AzureIdentityBinding => (API_GROUP, "AzureIdentityBinding"),
        ObjectKind::AzurePodIdentityException => (API_GROUP, "AzurePodIdentityException"),
        ObjectKind::AzureAssignedIdentity => (API_GROUP, "AzureAssignedIdentity"),
    }
}

/// The key of a named object of a kind steps can name; `namespace` is dropped for
/// cluster-scoped kinds.
pub fn key_of(kind: ObjectKind, namespace: &str, name: &str) -> ObjectKey {
    let (api_version, kind_name) = api_version_and_kind(kind);
    ObjectKey {
        api_version: api_version.to_string(),
        kind: kind_name.to_string(),
        namespace: kind.is_namespaced().then(|| namespace.to_string()),
        name: name.to_string(),
    }
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

/// The Secret holding the credential of a service-principal AzureIdentity.
pub fn credential_secret_name(azure_identity: &str) -> String {
    format!("{azure_identity}-secret")
}

/// AzureIdentity `spec.type`: 1 for a client secret, 2 for a certificate.
fn identity_type_of(credential: &ServicePrincipalCredential) -> u8 {
    match credential {
        ServicePrincipalCredential::Secret(_) => 1,
        ServicePrincipalCredential::Certificate { .. } => 2,
    }
}

/// The Secret's `data` as NMI reads it: type 1 takes the first (here the only) value,
/// `clientSecret`; type 2 reads `certificate` (PKCS#12 bytes) and `password`.
fn credential_secret_data(credential: &ServicePrincipalCredential) -> Value {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match credential {
        ServicePrincipalCredential::Secret(secret) => {
            json!({"clientSecret": b64(secret.as_bytes())})
        }
        ServicePrincipalCredential::Certificate { pkcs12, password } => {
            json!({"certificate": b64(pkcs12), "password": b64(password.as_bytes())})
        }
    }
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
            let secret_name = credential_secret_name(name);
            out.push(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": metadata(&secret_name, &ns, inst),
                "type": "Opaque",
                "data": credential_secret_data(&sp.credential),
            }));
            spec.insert("type".into(), json!(identity_type_of(&sp.credential)));
            spec.insert("clientID".into(), json!(sp.client_id));
            spec.insert("tenantID".into(), json!(inst.tenant_id));
            spec.insert(
                "clientPassword".into(),
                json!({"name": secret_name, "namespace": ns}),
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
            "spec": {
                "azureIdentity": b.azure_identity.value,
                "selector": inst.selector(&render(&b.selector, inst)?),
            },
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
        if let Some(kind) = value.get("kind").and_then(Value::as_str).map(String::from) {
            with_trial_selectors(&kind, &mut value, inst);
        }
        if let Some(md) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            md.entry("namespace")
                .or_insert_with(|| Value::String(inst.namespace.clone()));
        }
        out.push(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn decoded(data: &Value, key: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(data[key].as_str().unwrap())
            .unwrap()
    }

    #[test]
    fn secret_credential_is_a_single_client_secret_key_for_type_1() {
        let credential = ServicePrincipalCredential::Secret("s3cr3t-value".into());
        let data = credential_secret_data(&credential);
        assert_eq!(
            data.as_object().unwrap().len(),
            1,
            "NMI takes the first value"
        );
        assert_eq!(decoded(&data, "clientSecret"), b"s3cr3t-value");
        assert_eq!(identity_type_of(&credential), 1);
    }

    #[test]
    fn certificate_credential_is_pkcs12_and_password_for_type_2() {
        let credential = ServicePrincipalCredential::Certificate {
            pkcs12: vec![0x30, 0x82, 0x01],
            password: "pw".into(),
        };
        let data = credential_secret_data(&credential);
        assert_eq!(decoded(&data, "certificate"), vec![0x30, 0x82, 0x01]);
        assert_eq!(decoded(&data, "password"), b"pw");
        assert_eq!(data.as_object().unwrap().len(), 2);
        assert_eq!(identity_type_of(&credential), 2);
    }
}

#[cfg(test)]
mod selector_tests {
    use super::*;
    use crate::instance::ProviderFacts;

    fn instance() -> ScenarioInstance {
        let text = "name: s\nsteps:\n  - token: {pod: p, resource: r}\n    expect: {status: 200}\ncluster:\n  pods:\n    p: {node: node-0}\n";
        let scenario = podid_scenario::load_str(std::path::Path::new("s.yaml"), text)
            .unwrap()
            .scenario;
        let facts = ProviderFacts {
            run_id: "run".into(),
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            nodes: Vec::new(),
            mic_namespace: "default".into(),
            cluster_identity: None,
        };
        ScenarioInstance::new(&scenario, podid_scenario::NmiMode::Standard, facts, |a| {
            a.to_string()
        })
    }

    #[test]
    fn selectors_are_the_trials_own_wherever_they_are_written() {
        let inst = instance();
        let own = inst.selector("reader");
        assert_eq!(own, format!("reader-{}", inst.suffix));
        assert_ne!(
            own,
            instance().selector("reader"),
            "another trial's differs"
        );
        assert_eq!(inst.selector(""), "", "an empty label matches no binding");

        let mut binding = json!({"kind": "AzureIdentityBinding", "spec": {"selector": "reader"}});
        with_trial_selectors("AzureIdentityBinding", &mut binding, &inst);
        assert_eq!(binding["spec"]["selector"], own);
        let mut patch = json!({"metadata": {"labels": {"aadpodidbinding": "reader", "app": "x"}}});
        with_trial_selectors("Pod", &mut patch, &inst);
        assert_eq!(patch["metadata"]["labels"]["aadpodidbinding"], own);
        assert_eq!(patch["metadata"]["labels"]["app"], "x");
        let mut exception = json!({"spec": {"podLabels": {"aadpodidbinding": "reader"}}});
        let before = exception.clone();
        with_trial_selectors("AzurePodIdentityException", &mut exception, &inst);
        assert_eq!(
            exception, before,
            "exceptions match pods in their own namespace"
        );
    }
}
