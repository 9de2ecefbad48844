//! Turning upstream's manifest into the objects for one request. What changes, and why:
//!
//! - **namespace**: every namespaced object, and the service-account subjects of the role
//!   bindings, move to the requested namespace. NMI learns MIC's namespace from a flag
//!   (`--MICNamespace`, default `default`) and MIC keeps its leader-election lock in
//!   `default` unless told otherwise, so both flags are added when the namespace is another
//!   one; they go before the caller's flags, which can still override them.
//! - **images and pull policy**: podid's images, pulled as the cluster allows.
//! - **args**: the caller's flags appended after upstream's (a repeated flag's last value wins
//!   in both binaries' flag parsers).
//! - **hostAliases**: the cloud's host names, on NMI (hostNetwork pods get them in their hosts
//!   file too) and MIC.
//! - **CA**: the cloud's CA in a ConfigMap, mounted into NMI and MIC with `SSL_CERT_FILE`.
//! - **MIC's Secret**: upstream ships placeholders; the real service principal goes in.
//! - **status**: dropped; it is the API server's to write.
//!
//! Nothing else is touched: RBAC, service accounts, security contexts, probes, tolerations,
//! node selectors and upstream's volumes stay as released.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::checks::{check_nmi_kubelet_config, check_nmi_node_flag};
use super::pod_template::PodTemplate;
use super::{MIC_CONTAINER, Manifest, NMI_CONTAINER, RenderedDeployment};
use crate::deployment::{IdentityDeployment, MicCredentials, Mode, WorkloadKind, WorkloadRef};
use crate::error::InclusterError;
use crate::object::{ObjectKey, kind_of};
use crate::trust;

/// Namespaces every cluster has; podid never creates or deletes them.
pub const BUILT_IN_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Upstream's namespace when its manifest names none.
const UPSTREAM_DEFAULT_NAMESPACE: &str = "default";

/// Renders `manifest` for `request`. Fails, naming the object, when the manifest does not
/// have the shape this relies on (so an upstream change is noticed, not papered over).
pub fn render(
    manifest: &Manifest,
    request: &IdentityDeployment,
) -> Result<RenderedDeployment, InclusterError> {
    validate_request(request)?;
    let mut objects: Vec<Value> = manifest.documents.clone();
    if !request.install_crds {
        objects.retain(|o| kind_of(o) != "CustomResourceDefinition");
    }
    for object in &mut objects {
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }

    let nmi_at = find_workload(&objects, WorkloadKind::DaemonSet, NMI_CONTAINER, manifest)?
        .ok_or_else(|| {
            InclusterError::render(
                manifest.path.display().to_string(),
                format!("no DaemonSet with a container named {NMI_CONTAINER:?}"),
            )
        })?;
    let mic_at = find_workload(&objects, WorkloadKind::Deployment, MIC_CONTAINER, manifest)?;
    match (request.mode, mic_at) {
        (Mode::Standard, None) => {
            return Err(InclusterError::render(
                manifest.path.display().to_string(),
                format!(
                    "standard mode needs MIC, but there is no Deployment with a container named {MIC_CONTAINER:?}"
                ),
            ));
        }
        (Mode::Managed, Some(_)) => {
            return Err(InclusterError::render(
                manifest.path.display().to_string(),
                "managed mode runs no MIC, but this manifest has one (is it the standard-mode manifest?)",
            ));
        }
        _ => {}
    }

    let upstream_namespace = objects[nmi_at]
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(UPSTREAM_DEFAULT_NAMESPACE)
        .to_string();
    move_to_namespace(&mut objects, &upstream_namespace, &request.namespace);

    let nmi = patch_nmi(&mut objects[nmi_at], request)?;
    let mic = match mic_at {
        Some(at) => {
            let (mic, secrets) = patch_mic(&mut objects[at], request)?;
            fill_mic_secret(&mut objects, &secrets, request)?;
            Some(mic)
        }
        None => None,
    };

    let mut rendered = Vec::with_capacity(objects.len() + 2);
    if !BUILT_IN_NAMESPACES.contains(&request.namespace.as_str()) {
        rendered.push(namespace_object(&request.namespace));
    }
    rendered.extend(objects);
    if let Some(pem) = &request.cloud.ca_bundle_pem {
        let config_map = serde_json::to_value(trust::ca_config_map(&request.namespace, pem))
            .map_err(|e| InclusterError::render("the CA ConfigMap", e.to_string()))?;
        rendered.push(config_map);
    }
    tracing::debug!(
        mode = request.mode.as_str(),
        namespace = %request.namespace,
        objects = rendered.len(),
        "rendered {}",
        manifest.path.display()
    );
    Ok(RenderedDeployment {
        mode: request.mode,
        namespace: request.namespace.clone(),
        objects: rendered,
        nmi,
        mic,
        source: manifest.path.clone(),
    })
}

fn validate_request(request: &IdentityDeployment) -> Result<(), InclusterError> {
    let problem = |p: String| Err(InclusterError::render("the deployment request", p));
    if !is_dns_label(&request.namespace) {
        return problem(format!(
            "namespace {:?} is not a DNS label (lower-case letters, digits and '-', at most 63)",
            request.namespace
        ));
    }
    if request.nmi_image.trim().is_empty() {
        return problem("no NMI image".into());
    }
    if request.mode == Mode::Standard {
        if request.mic_image.trim().is_empty() {
            return problem("standard mode needs a MIC image".into());
        }
        if request.cloud.mic_credentials.is_none() {
            return problem("standard mode needs MIC's credentials".into());
        }
    }
    Ok(())
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Index of the only `kind` object whose pod template has a container named `container`.
fn find_workload(
    objects: &[Value],
    kind: WorkloadKind,
    container: &str,
    manifest: &Manifest,
) -> Result<Option<usize>, InclusterError> {
    let found: Vec<usize> = objects
        .iter()
        .enumerate()
        .filter(|(_, o)| kind_of(o) == kind.as_str())
        .filter(|(_, o)| {
            o.pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.get("name").and_then(Value::as_str) == Some(container))
                })
        })
        .map(|(i, _)| i)
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(InclusterError::render(
            manifest.path.display().to_string(),
            format!(
                "{} {kind} objects have a container named {container:?}; expected one",
                found.len()
            ),
        )),
    }
}

/// Moves namespaced objects from `from` to `to`, and the role bindings' service-account
/// subjects with them.
fn move_to_namespace(objects: &mut [Value], from: &str, to: &str) {
    for object in objects.iter_mut() {
        if let Some(ns) = object.pointer_mut("/metadata/namespace") {
            *ns = Value::String(to.into());
        }
        if matches!(kind_of(object), "ClusterRoleBinding" | "RoleBinding")
            && let Some(subjects) = object.get_mut("subjects").and_then(Value::as_array_mut)
        {
            for subject in subjects.iter_mut() {
                let is_moved_account = subject.get("kind").and_then(Value::as_str)
                    == Some("ServiceAccount")
                    && subject.get("namespace").and_then(Value::as_str) == Some(from);
                if is_moved_account {
                    subject["namespace"] = Value::String(to.into());
                }
            }
        }
    }
}

/// What NMI and MIC pods get alike: image, pull policy, args, cloud host names and the CA.
fn patch_common(
    template: &mut PodTemplate<'_>,
    container: &str,
    image: &str,
    args: &[String],
    request: &IdentityDeployment,
) -> Result<(), InclusterError> {
    template.set_image(container, image)?;
    template.set_pull_policy(request.image_pull_policy.as_str())?;
    template.append_args(container, args)?;
    template.add_host_aliases(&trust::host_alias_objects(&request.cloud.host_aliases))?;
    if request.cloud.ca_bundle_pem.is_some() {
        template.add_volume(&trust::ca_volume(), &trust::ca_volume_mount())?;
        template.upsert_env(&trust::ca_env(trust::GO_CA_VARS))?;
    }
    Ok(())
}

fn patch_nmi(
    object: &mut Value,
    request: &IdentityDeployment,
) -> Result<WorkloadRef, InclusterError> {
    let reference = workload_ref(object, WorkloadKind::DaemonSet)?;
    let mut args = Vec::new();
    if request.mode == Mode::Standard && request.namespace != UPSTREAM_DEFAULT_NAMESPACE {
        args.push(format!("--MICNamespace={}", request.namespace));
    }
    args.extend(request.nmi_flags.iter().cloned());
    let mut template = PodTemplate::of(object, reference.to_string())?;
    patch_common(
        &mut template,
        NMI_CONTAINER,
        &request.nmi_image,
        &args,
        request,
    )?;
    check_nmi_node_flag(&mut template, &reference)?;
    check_nmi_kubelet_config(&mut template, &reference)?;
    Ok(reference)
}

/// Patches MIC's Deployment; returns it and the Secrets its environment reads
/// (`secret name → keys`).
fn patch_mic(
    object: &mut Value,
    request: &IdentityDeployment,
) -> Result<(WorkloadRef, BTreeMap<String, Vec<String>>), InclusterError> {
    let reference = workload_ref(object, WorkloadKind::Deployment)?;
    let mut args = Vec::new();
    if request.namespace != UPSTREAM_DEFAULT_NAMESPACE {
        args.push(format!("--leader-election-namespace={}", request.namespace));
    }
    args.extend(request.mic_flags.iter().cloned());
    if let Some(replicas) = request.mic_replicas {
        object["spec"]["replicas"] = Value::from(replicas);
    }
    let mut template = PodTemplate::of(object, reference.to_string())?;
    patch_common(
        &mut template,
        MIC_CONTAINER,
        &request.mic_image,
        &args,
        request,
    )?;
    add_cluster_identity(&mut template, request, &reference)?;
    let mut secrets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (secret, key) in template.secret_key_refs(MIC_CONTAINER)? {
        secrets.entry(secret).or_default().push(key);
    }
    Ok((reference, secrets))
}

/// The Secret key and variable of the cluster identity, as upstream's chart names them.
const CLUSTER_IDENTITY_KEY: &str = "UserAssignedMSIClientID";
const CLUSTER_IDENTITY_VAR: &str = "USER_ASSIGNED_MSI_CLIENT_ID";

/// With a cluster identity, MIC reads its client ID from the Secret it reads the rest from, as
/// upstream's chart has it (`USER_ASSIGNED_MSI_CLIENT_ID` ← `UserAssignedMSIClientID`).
fn add_cluster_identity(
    template: &mut PodTemplate<'_>,
    request: &IdentityDeployment,
    reference: &WorkloadRef,
) -> Result<(), InclusterError> {
    let wanted = request
        .cloud
        .mic_credentials
        .as_ref()
        .is_some_and(|c| c.user_assigned_identity_id.is_some());
    if !wanted {
        return Ok(());
    }
    let secret = template
        .secret_key_refs(MIC_CONTAINER)?
        .into_iter()
        .map(|(secret, _)| secret)
        .next()
        .ok_or_else(|| {
            InclusterError::render(
                reference.to_string(),
                "MIC reads no Secret to add the cluster identity to",
            )
        })?;
    template.upsert_env(&[json!({
        "name": CLUSTER_IDENTITY_VAR,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": CLUSTER_IDENTITY_KEY}},
    })])
}

/// The Secret keys of upstream's no-azure.json installation and what fills them.
fn credential_entries(credentials: &MicCredentials) -> BTreeMap<&'static str, &str> {
    let mut entries = BTreeMap::from([
        ("Cloud", credentials.cloud.as_str()),
        ("TenantID", credentials.tenant_id.as_str()),
        ("SubscriptionID", credentials.subscription_id.as_str()),
        ("ResourceGroup", credentials.resource_group.as_str()),
        ("ClientID", credentials.client_id.as_str()),
        ("ClientSecret", credentials.client_secret.as_str()),
        ("VMType", credentials.vm_type.as_str()),
    ]);
    if let Some(client_id) = &credentials.user_assigned_identity_id {
        entries.insert(CLUSTER_IDENTITY_KEY, client_id.as_str());
    }
    entries
}

/// Replaces the placeholder data of each Secret MIC reads with the real credentials. Every key
/// MIC reads must be one podid fills: a key added upstream fails here instead of leaving MIC
/// to start with a placeholder.
fn fill_mic_secret(
    objects: &mut [Value],
    secrets: &BTreeMap<String, Vec<String>>,
    request: &IdentityDeployment,
) -> Result<(), InclusterError> {
    let credentials = request
        .cloud
        .mic_credentials
        .as_ref()
        .ok_or_else(|| InclusterError::render("MIC's Secret", "no MIC credentials given"))?;
    let entries = credential_entries(credentials);
    if secrets.is_empty() {
        return Err(InclusterError::render(
            "MIC's Deployment",
            "MIC reads no Secret; this is not the no-azure.json installation podid expects",
        ));
    }
    for (name, keys) in secrets {
        let what = format!("Secret {}/{name}", request.namespace);
        if let Some(unknown) = keys.iter().find(|k| !entries.contains_key(k.as_str())) {
            return Err(InclusterError::render(
                &what,
                format!("MIC reads key {unknown:?}, which podid does not know how to fill"),
            ));
        }
        let secret = objects
            .iter_mut()
            .find(|o| kind_of(o) == "Secret" && ObjectKey::of(o).is_ok_and(|k| &k.name == name))
            .ok_or_else(|| {
                InclusterError::render(&what, "MIC reads it but the manifest has none")
            })?;
        let data: serde_json::Map<String, Value> = entries
            .iter()
            .map(|(key, value)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                ((*key).to_string(), Value::String(encoded))
            })
            .collect();
        let map = secret
            .as_object_mut()
            .ok_or_else(|| InclusterError::render(&what, "not an object"))?;
        map.remove("stringData");
        map.insert("data".into(), Value::Object(data));
    }
    Ok(())
}

fn workload_ref(object: &Value, kind: WorkloadKind) -> Result<WorkloadRef, InclusterError> {
    let key = ObjectKey::of(object).map_err(|p| InclusterError::render(kind.as_str(), p))?;
    let what = key.to_string();
    let namespace = key
        .namespace
        .ok_or_else(|| InclusterError::render(&what, "no metadata.namespace"))?;
    let selector: BTreeMap<String, String> = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    if selector.is_empty() {
        return Err(InclusterError::render(
            &what,
            "no spec.selector.matchLabels (needed to find its pods)",
        ));
    }
    Ok(WorkloadRef {
        kind,
        namespace,
        name: key.name,
        selector,
    })
}

fn namespace_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": { trust::MANAGED_BY_LABEL.0: trust::MANAGED_BY_LABEL.1 },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_must_be_dns_labels() {
        assert!(is_dns_label("podid-e2e"));
        assert!(is_dns_label("default"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label("Upper"));
        assert!(!is_dns_label("-lead"));
        assert!(!is_dns_label("a.b"));
        assert!(!is_dns_label(&"a".repeat(64)));
    }
}
