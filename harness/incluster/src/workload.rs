//! Workload pods: the pods a scenario binds identities to and requests tokens from. Each is a
//! real pod on a chosen node, resolving the cloud's host names and trusting its CA like NMI
//! and MIC do.
//!
//! Owner references: NMI reads a pod's owning ReplicaSet name (the MIC short circuit matches
//! it), and a garbage collector deletes any pod whose owner does not exist, so the owner must
//! be real. podid creates a placeholder owner whose selector matches a label the pod does not
//! carry, and gives the pod a *non-controller* reference to it: the owner's controller then
//! neither adopts, releases nor deletes the pod, while NMI (which reads only the reference's
//! kind and name) sees it as owned. A placeholder ReplicaSet has 0 replicas; a placeholder
//! DaemonSet's pod template selects a node label no node carries
//! ([`PLACEHOLDER_NODE_SELECTOR`]), so it runs no pod either.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, Namespace, Pod, PodSpec, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use podid_wait::{Check, Poll};

use crate::apply::FIELD_MANAGER;
use crate::deployment::{HostAlias, ImagePullPolicy};
use crate::error::{InclusterError, is_not_found};
use crate::{pod_status, rollout, trust};

/// Name of the workload pod's one container.
pub const WORKLOAD_CONTAINER: &str = "workload";
/// Label on a placeholder owner's selector and template (never on a workload pod).
pub const OWNER_PLACEHOLDER_LABEL: &str = "podid.io/owner-placeholder";
/// The `nodeSelector` of a placeholder DaemonSet's pod template: a label no node carries, so
/// the DaemonSet controller places its pod on no node.
pub const PLACEHOLDER_NODE_SELECTOR: (&str, &str) = ("podid.io/placeholder-node", "none");

/// The placeholder object that owns a workload pod, by kind and name (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadOwner {
    ReplicaSet(String),
    DaemonSet(String),
}

impl WorkloadOwner {
    /// The `kind` of the owner reference.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ReplicaSet(_) => "ReplicaSet",
            Self::DaemonSet(_) => "DaemonSet",
        }
    }

    /// The owner's name.
    pub fn name(&self) -> &str {
        match self {
            Self::ReplicaSet(name) | Self::DaemonSet(name) => name,
        }
    }
}

/// Where the pod runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// `spec.nodeName`: bypasses the scheduler (and its taints and resource checks).
    NodeName(String),
    /// A `nodeSelector` on `kubernetes.io/hostname`: the scheduler places it on that node.
    HostnameSelector(String),
}

/// A workload pod to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub namespace: String,
    pub name: String,
    /// `None`: wherever the scheduler likes.
    pub placement: Option<Placement>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// A placeholder ReplicaSet or DaemonSet to own the pod (see the module documentation).
    pub owner: Option<WorkloadOwner>,
    /// An image whose entrypoint keeps running (such as `pause`), or one started with
    /// `command` that does.
    pub image: String,
    /// Overrides the image's entrypoint when not empty.
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The cloud's host names, and `<account>.blob.core.windows.net` for each storage account
    /// (see [`trust::blob_host`]).
    pub host_aliases: Vec<HostAlias>,
    /// The cloud's CA: stored in the namespace's `podid-ca` ConfigMap and mounted, with
    /// `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE` and `NODE_EXTRA_CA_CERTS` pointing at it.
    pub ca_bundle_pem: Option<String>,
    pub image_pull_policy: ImagePullPolicy,
}

/// The placeholder ReplicaSet that owns the pod, if `spec` asks for a ReplicaSet owner.
pub fn build_replica_set(spec: &WorkloadSpec) -> Option<ReplicaSet> {
    let Some(WorkloadOwner::ReplicaSet(name)) = &spec.owner else {
        return None;
    };
    let (metadata, selector, template) = placeholder_parts(spec, name, None);
    Some(ReplicaSet {
        metadata,
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            selector,
            template: Some(template),
            ..ReplicaSetSpec::default()
        }),
        ..ReplicaSet::default()
    })
}

/// The placeholder DaemonSet that owns the pod, if `spec` asks for a DaemonSet owner. Its pod
/// template selects [`PLACEHOLDER_NODE_SELECTOR`], which no node matches, so it runs no pod.
pub fn build_daemon_set(spec: &WorkloadSpec) -> Option<DaemonSet> {
    let Some(WorkloadOwner::DaemonSet(name)) = &spec.owner else {
        return None;
    };
    let node_selector = BTreeMap::from([(
        PLACEHOLDER_NODE_SELECTOR.0.to_string(),
        PLACEHOLDER_NODE_SELECTOR.1.to_string(),
    )]);
    let (metadata, selector, template) = placeholder_parts(spec, name, Some(node_selector));
    Some(DaemonSet {
        metadata,
        spec: Some(DaemonSetSpec {
            selector,
            template,
            ..DaemonSetSpec::default()
        }),
        ..DaemonSet::default()
    })
}

/// A placeholder owner's metadata, selector and pod template: the selector and template carry
/// [`OWNER_PLACEHOLDER_LABEL`], which no workload pod does.
fn placeholder_parts(
    spec: &WorkloadSpec,
    name: &str,
    node_selector: Option<BTreeMap<String, String>>,
) -> (ObjectMeta, LabelSelector, PodTemplateSpec) {
    let labels = BTreeMap::from([(OWNER_PLACEHOLDER_LABEL.to_string(), name.to_string())]);
    let metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(spec.namespace.clone()),
        labels: Some(BTreeMap::from([(
            trust::MANAGED_BY_LABEL.0.to_string(),
            trust::MANAGED_BY_LABEL.1.to_string(),
        )])),
        ..ObjectMeta::default()
    };
    let selector = LabelSelector {
        match_labels: Some(labels.clone()),
        ..LabelSelector::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "placeholder".into(),
                image: Some(spec.image.clone()),
                ..Container::default()
            }],
            node_selector,
            ..PodSpec::default()
        }),
    };
    (metadata, selector, template)
}

/// The pod for `spec`; `owner_uid` is the uid of its placeholder owner (created first), if it
/// has one.
pub fn build_pod(spec: &WorkloadSpec, owner_uid: Option<&str>) -> Pod {
    let owner_references = match (&spec.owner, owner_uid) {
        (Some(owner), Some(uid)) => Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: owner.kind().into(),
            name: owner.name().into(),
            uid: uid.into(),
            controller: Some(false),
            block_owner_deletion: Some(false),
        }]),
        _ => None,
    };
    let mut env: Vec<EnvVar> = spec
        .env
        .iter()
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: Some(value.clone()),
            ..EnvVar::default()
        })
        .collect();
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    if spec.ca_bundle_pem.is_some() {
        env.extend(trust::ca_env(trust::WORKLOAD_CA_VARS));
        volumes.push(trust::ca_volume());
        mounts.push(trust::ca_volume_mount());
    }
    let (node_name, node_selector) = match &spec.placement {
        Some(Placement::NodeName(node)) => (Some(node.clone()), None),
        Some(Placement::HostnameSelector(node)) => (
            None,
            Some(BTreeMap::from([(
                "kubernetes.io/hostname".to_string(),
                node.clone(),
            )])),
        ),
        None => (None, None),
    };
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let non_empty_map = |m: &BTreeMap<String, String>| (!m.is_empty()).then(|| m.clone());
    Pod {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(spec.namespace.clone()),
            labels: non_empty_map(&spec.labels),
            annotations: non_empty_map(&spec.annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: WORKLOAD_CONTAINER.into(),
                image: Some(spec.image.clone()),
                image_pull_policy: Some(spec.image_pull_policy.as_str().into()),
                command: non_empty(&spec.command),
                args: non_empty(&spec.args),
                env: (!env.is_empty()).then_some(env),
                volume_mounts: (!mounts.is_empty()).then_some(mounts),
                ..Container::default()
            }],
            volumes: (!volumes.is_empty()).then_some(volumes),
            host_aliases: (!spec.host_aliases.is_empty())
                .then(|| trust::host_alias_objects(&spec.host_aliases)),
            node_name,
            node_selector,
            // A workload that exits shows as Failed instead of being restarted unseen.
            restart_policy: Some("Never".into()),
            // Workloads hold no state; deleting one should not wait 30 s for a process that
            // ignores SIGTERM.
            termination_grace_period_seconds: Some(1),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// A workload pod that is running and ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningWorkload {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ip: IpAddr,
    pub node: String,
    /// From the create call to Ready.
    pub took: Duration,
}

/// Creates the pod (and its namespace, CA ConfigMap and owner when needed) and waits until
/// it is Running and Ready with an IP. On timeout or a pod that cannot start, the error
/// carries its status, events and log lines.
pub async fn create_and_wait_running(
    client: &Client,
    spec: &WorkloadSpec,
    timeout: Duration,
) -> Result<RunningWorkload, InclusterError> {
    let started = Instant::now();
    ensure_namespace(client, &spec.namespace).await?;
    if let Some(pem) = &spec.ca_bundle_pem {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &spec.namespace);
        let config_map = trust::ca_config_map(&spec.namespace, pem);
        api.patch(
            trust::CA_CONFIG_MAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&config_map),
        )
        .await
        .map_err(|e| {
            InclusterError::kube(
                format!(
                    "applying ConfigMap {}/{}",
                    spec.namespace,
                    trust::CA_CONFIG_MAP
                ),
                e,
            )
        })?;
    }
    let owner_uid = if let Some(rs) = build_replica_set(spec) {
        Some(apply_owner(client, &rs).await?)
    } else if let Some(ds) = build_daemon_set(spec) {
        Some(apply_owner(client, &ds).await?)
    } else {
        None
    };
    let pod = build_pod(spec, owner_uid.as_deref());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &spec.namespace);
    let what = format!("pod {}/{}", spec.namespace, spec.name);
    pods.create(&PostParams::default(), &pod)
        .await
        .map_err(|e| InclusterError::kube(format!("creating {what}"), e))?;

    let poll = Poll::every(Duration::from_millis(250), timeout);
    let outcome = podid_wait::until(poll, || {
        let pods = pods.clone();
        async move {
            let pod = match pods.get_opt(&spec.name).await {
                Ok(Some(pod)) => pod,
                Ok(None) => return Check::Failed("the pod disappeared".to_string()),
                Err(e) => return Check::Pending(format!("reading it: {e}")),
            };
            if let Some(why) = pod_status::permanent_failure(&pod) {
                return Check::Failed(why);
            }
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok());
            match ip {
                Some(ip) if pod_status::phase(&pod) == "Running" && pod_status::is_ready(&pod) => {
                    Check::Done((pod, ip))
                }
                _ => Check::Pending(pod_status::describe(&pod)),
            }
        }
    })
    .await;
    match outcome {
        Ok((pod, ip)) => {
            let running = RunningWorkload {
                namespace: spec.namespace.clone(),
                name: spec.name.clone(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                ip,
                node: pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
                took: started.elapsed(),
            };
            tracing::debug!(
                ip = %running.ip,
                node = %running.node,
                took_ms = running.took.as_millis() as u64,
                "{what} running"
            );
            Ok(running)
        }
        Err(e) => {
            let detail = match pods.get_opt(&spec.name).await {
                Ok(Some(pod)) => rollout::pod_report(client, &pod, 20).await,
                Ok(None) => e.clone().into_state(),
                Err(read) => format!("{} (reading it again: {read})", e.clone().into_state()),
            };
            Err(InclusterError::NotReady {
                what: format!("{what} running and ready"),
                waited: e.waited(),
                detail,
            })
        }
    }
}

/// Applies the placeholder owner (a ReplicaSet or DaemonSet) and returns its uid.
async fn apply_owner<K>(client: &Client, owner: &K) -> Result<String, InclusterError>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let kind = K::kind(&());
    let namespace = owner.meta().namespace.clone().unwrap_or_default();
    let name = owner.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    let applied = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(owner),
        )
        .await
        .map_err(|e| InclusterError::kube(format!("applying {kind} {namespace}/{name}"), e))?;
    applied
        .meta()
        .uid
        .clone()
        .ok_or_else(|| InclusterError::render(format!("{kind} {namespace}/{name}"), "no uid"))
}

/// Creates `namespace` unless it exists.
pub async fn ensure_namespace(client: &Client, namespace: &str) -> Result<(), InclusterError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let action = || format!("creating namespace {namespace}");
    if api
        .get_opt(namespace)
        .await
        .map_err(|e| InclusterError::kube(action(), e))?
        .is_some()
    {
        return Ok(());
    }
    let object = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(InclusterError::kube(action(), e)),
    }
}

/// Deletes the pod and waits until it is gone (the kubelet has stopped it), then deletes its
/// placeholder owner unless another pod still refers to it. Returns how long it took; a pod
/// that does not exist is not an error.
pub async fn delete_and_wait_gone(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Duration, InclusterError> {
    let started = Instant::now();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("pod {namespace}/{name}");
    let pod = match pods.get_opt(name).await {
        Ok(Some(pod)) => pod,
        Ok(None) => return Ok(started.elapsed()),
        Err(e) => return Err(InclusterError::kube(format!("reading {what}"), e)),
    };
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(started.elapsed()),
        Err(e) => return Err(InclusterError::kube(format!("deleting {what}"), e)),
    }
    let poll = Poll::every(Duration::from_millis(250), timeout);
    podid_wait::until(poll, || {
        let pods = pods.clone();
        async move {
            match pods.get_opt(name).await {
                Ok(None) => Check::Done(()),
                Ok(Some(pod)) => Check::Pending(pod_status::describe(&pod)),
                Err(e) => Check::Pending(format!("reading it: {e}")),
            }
        }
    })
    .await
    .map_err(|e| InclusterError::NotReady {
        what: format!("{what} to be gone"),
        waited: e.waited(),
        detail: e.into_state(),
    })?;
    for owner in pod.metadata.owner_references.unwrap_or_default() {
        match owner.kind.as_str() {
            "ReplicaSet" => {
                delete_placeholder_owner::<ReplicaSet>(client, namespace, &owner, |rs| {
                    rs.spec.as_ref().map(|s| &s.selector)
                })
                .await?
            }
            "DaemonSet" => {
                delete_placeholder_owner::<DaemonSet>(client, namespace, &owner, |ds| {
                    ds.spec.as_ref().map(|s| &s.selector)
                })
                .await?
            }
            _ => {}
        }
    }
    Ok(started.elapsed())
}

/// Deletes a placeholder ReplicaSet or DaemonSet podid made (its selector, read by `selector`,
/// has [`OWNER_PLACEHOLDER_LABEL`]), once no pod refers to it any more (deleting it earlier
/// would let the garbage collector delete the others).
async fn delete_placeholder_owner<K>(
    client: &Client,
    namespace: &str,
    owner: &OwnerReference,
    selector: impl Fn(&K) -> Option<&LabelSelector>,
) -> Result<(), InclusterError>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let owners: Api<K> = Api::namespaced(client.clone(), namespace);
    let what = format!("{} {namespace}/{}", K::kind(&()), owner.name);
    let Some(object) = owners
        .get_opt(&owner.name)
        .await
        .map_err(|e| InclusterError::kube(format!("reading {what}"), e))?
    else {
        return Ok(());
    };
    let ours = selector(&object)
        .and_then(|s| s.match_labels.as_ref())
        .is_some_and(|labels| labels.contains_key(OWNER_PLACEHOLDER_LABEL));
    if !ours || object.meta().uid.as_deref() != Some(owner.uid.as_str()) {
        return Ok(());
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let still_owned = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| InclusterError::kube(format!("listing pods in {namespace}"), e))?
        .items
        .iter()
        .any(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == owner.uid)
        });
    if still_owned {
        return Ok(());
    }
    match owners
        .delete(&owner.name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(InclusterError::kube(format!("deleting {what}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WorkloadSpec {
        let blob: IpAddr = "172.18.255.254".parse().unwrap();
        let aad: IpAddr = "172.18.255.252".parse().unwrap();
        WorkloadSpec {
            namespace: "team-a".into(),
            name: "reader".into(),
            placement: Some(Placement::NodeName("podid-worker".into())),
            labels: BTreeMap::from([("aadpodidbinding".into(), "reader".into())]),
            annotations: BTreeMap::from([("note".into(), "x".into())]),
            owner: Some(WorkloadOwner::ReplicaSet("reader-5d8f".into())),
            image: "registry.k8s.io/pause:3.10".into(),
            command: Vec::new(),
            args: Vec::new(),
            env: vec![("PROBE_MODE".into(), "serve".into())],
            host_aliases: trust::group_host_aliases([
                (aad, "login.microsoftonline.com".to_string()),
                (blob, trust::blob_host("acct1")),
            ]),
            ca_bundle_pem: Some("PEM".into()),
            image_pull_policy: ImagePullPolicy::Never,
        }
    }

    #[test]
    fn a_pinned_owned_pod_with_the_cloud_wired_in() {
        let pod = build_pod(&spec(), Some("uid-1"));
        insta::assert_yaml_snapshot!(pod);
    }

    #[test]
    fn a_bare_pod_placed_by_the_scheduler_on_a_host() {
        let mut s = spec();
        s.placement = Some(Placement::HostnameSelector("node-b".into()));
        s.owner = None;
        s.ca_bundle_pem = None;
        s.host_aliases.clear();
        s.env.clear();
        s.labels.clear();
        s.annotations.clear();
        s.command = vec!["/probe".into()];
        s.args = vec!["serve".into()];
        let pod = build_pod(&s, None);
        insta::assert_yaml_snapshot!(pod);
    }

    #[test]
    fn the_placeholder_owner_never_selects_the_pod() {
        let s = spec();
        let rs = build_replica_set(&s).unwrap();
        insta::assert_yaml_snapshot!(rs);
        let selector = rs.spec.unwrap().selector.match_labels.unwrap();
        let pod_labels = build_pod(&s, Some("u")).metadata.labels.unwrap();
        assert!(selector.iter().all(|(k, _)| !pod_labels.contains_key(k)));
        assert!(build_daemon_set(&s).is_none());
        assert!(build_replica_set(&WorkloadSpec { owner: None, ..s }).is_none());
    }

    fn daemon_set_owned() -> WorkloadSpec {
        WorkloadSpec {
            owner: Some(WorkloadOwner::DaemonSet("mic-agent".into())),
            ..spec()
        }
    }

    #[test]
    fn the_placeholder_daemon_set_never_selects_the_pod_nor_runs_one() {
        let s = daemon_set_owned();
        assert!(build_replica_set(&s).is_none());
        let ds = build_daemon_set(&s).unwrap();
        insta::assert_yaml_snapshot!(ds);
        let ds_spec = ds.spec.unwrap();
        let selector = ds_spec.selector.match_labels.unwrap();
        assert_eq!(
            selector,
            BTreeMap::from([(OWNER_PLACEHOLDER_LABEL.to_string(), "mic-agent".to_string())])
        );
        let pod_labels = build_pod(&s, Some("u")).metadata.labels.unwrap();
        assert!(selector.iter().all(|(k, _)| !pod_labels.contains_key(k)));
        // The template's nodeSelector is a podid label no node carries: not a well-known
        // node label, nor the `podid.io/node` label the kind provider puts on its nodes.
        let node_selector = ds_spec.template.spec.unwrap().node_selector.unwrap();
        assert_eq!(
            node_selector,
            BTreeMap::from([(
                PLACEHOLDER_NODE_SELECTOR.0.to_string(),
                PLACEHOLDER_NODE_SELECTOR.1.to_string()
            )])
        );
        assert!(PLACEHOLDER_NODE_SELECTOR.0.starts_with("podid.io/"));
        assert_ne!(PLACEHOLDER_NODE_SELECTOR.0, "podid.io/node");
    }

    #[test]
    fn a_daemon_set_owned_pod_refers_to_its_placeholder() {
        let refs = build_pod(&daemon_set_owned(), Some("uid-ds"))
            .metadata
            .owner_references
            .unwrap();
        assert_eq!(
            refs,
            vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "DaemonSet".into(),
                name: "mic-agent".into(),
                uid: "uid-ds".into(),
                controller: Some(false),
                block_owner_deletion: Some(false),
            }]
        );
    }

    #[test]
    fn an_owner_reference_needs_the_owners_uid() {
        assert!(build_pod(&spec(), None).metadata.owner_references.is_none());
        let refs = build_pod(&spec(), Some("uid-9"))
            .metadata
            .owner_references
            .unwrap();
        assert_eq!(refs[0].uid, "uid-9");
        assert_eq!(refs[0].kind, "ReplicaSet");
        assert_eq!(refs[0].name, "reader-5d8f");
        assert_eq!(refs[0].controller, Some(false));
    }
}
