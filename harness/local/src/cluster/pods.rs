//! The harness as kubelet: pods are Pod objects plus a network namespace each, wired to their
//! node by a veth with the node's next free address; commands run inside them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use podid_netns::{NetNamespace, PodLink, connect_pod, namespace_name};

use super::{LocalCluster, LocalNode};
use crate::LocalError;
use crate::addressing::PodAddressPool;
use crate::config::PodSpec;
use crate::objects::{now_rfc3339, pod_object, pod_status_patch};
use crate::state::NamespaceKind;

/// A pod the harness created: its API object's identity and its network namespace.
#[derive(Debug, Clone)]
pub struct LocalPod {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Node it runs on.
    pub node: String,
    /// Its `status.podIP`, held by `eth0` in its namespace.
    pub ip: Ipv4Addr,
    /// Its network namespace.
    pub netns: NetNamespace,
    host: u8,
}

/// The kubelet's books: the pods that exist and the addresses each node has handed out.
#[derive(Default)]
pub(super) struct PodTable {
    pools: BTreeMap<String, PodAddressPool>,
    pods: BTreeMap<(String, String), LocalPod>,
}

impl PodTable {
    /// Forgets every pod, dropping the namespace handles that would keep their namespaces alive.
    pub(super) fn clear(&mut self) {
        self.pods.clear();
    }
}

impl LocalCluster {
    /// Creates a pod on its node: the Pod object (owned by `spec.owner` through a generated uid:
    /// no controller runs here to own it), its namespace and veth with the node's next address,
    /// then a status in `spec.phase` with that podIP.
    pub async fn create_pod(&self, spec: PodSpec) -> Result<LocalPod, LocalError> {
        let node = self.known_node(&spec.node)?;
        let key = (spec.namespace.clone(), spec.name.clone());
        let host = {
            let mut running = self.running.lock().await;
            let table = &mut running.pods;
            if table.pods.contains_key(&key) {
                return Err(LocalError::Config(format!(
                    "pod {}/{} already exists",
                    spec.namespace, spec.name
                )));
            }
            table
                .pools
                .entry(node.name.clone())
                .or_default()
                .allocate()
                .ok_or_else(|| LocalError::AddressesExhausted {
                    node: node.name.clone(),
                })?
        };
        match self.wire_pod(node, &spec, host).await {
            Ok(pod) => {
                self.running.lock().await.pods.pods.insert(key, pod.clone());
                Ok(pod)
            }
            Err(e) => {
                let _ = self
                    .unwire_pod(&spec.namespace, &spec.name, node, host)
                    .await;
                Err(e)
            }
        }
    }

    /// Deletes a pod (grace 0) and its namespace, and frees its address.
    pub async fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), LocalError> {
        let pod = self
            .running
            .lock()
            .await
            .pods
            .pods
            .remove(&(namespace.to_string(), name.to_string()))
            .ok_or_else(|| LocalError::NotFound {
                kind: "pod",
                name: format!("{namespace}/{name}"),
            })?;
        let node = self.node(&pod.node).expect("pods live on known nodes");
        self.unwire_pod(namespace, name, node, pod.host).await
    }

    /// Creates a Pod object on `spec.node` whose status reports `ip`, another pod's address, and
    /// that has no network of its own: what a stale status or a forged one looks like to NMI.
    pub async fn create_pod_record(&self, spec: PodSpec, ip: Ipv4Addr) -> Result<(), LocalError> {
        let node = self.known_node(&spec.node)?;
        let (pods, what) = self.create_pod_object(&spec).await?;
        let status = pod_status_patch(spec.phase, ip, node.addressing.host_ip(), &now_rfc3339());
        pods.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| LocalError::kube(format!("setting the status of {what}"), e))?;
        Ok(())
    }

    /// Deletes a Pod object made by [`LocalCluster::create_pod_record`] (grace 0).
    pub async fn delete_pod_record(&self, namespace: &str, name: &str) -> Result<(), LocalError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match pods.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(LocalError::kube(
                format!("deleting pod {namespace}/{name}"),
                e,
            )),
        }
    }

    /// A command running `program` inside the pod's namespace via `ip netns exec`, so the pod's
    /// hosts file (see [`LocalCluster::set_pod_hosts`]) applies.
    pub fn pod_command(&self, pod: &LocalPod, program: &Path) -> tokio::process::Command {
        pod.netns.exec_command(program)
    }

    /// Sets the host names the pod resolves (its `/etc/netns/<ns>/hosts`).
    pub fn set_pod_hosts(
        &self,
        pod: &LocalPod,
        entries: &[(IpAddr, String)],
    ) -> Result<(), LocalError> {
        Ok(pod.netns.write_hosts(entries)?)
    }

    /// Creates Namespace `namespace` and its `default` ServiceAccount if missing.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), LocalError> {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": namespace}
        }))
        .expect("static object");
        create_if_missing(&Api::<Namespace>::all(self.client.clone()), &ns)
            .await
            .map_err(|e| LocalError::kube(format!("creating namespace {namespace}"), e))?;
        let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "default", "namespace": namespace}
        }))
        .expect("static object");
        create_if_missing(
            &Api::<ServiceAccount>::namespaced(self.client.clone(), namespace),
            &sa,
        )
        .await
        .map_err(|e| LocalError::kube(format!("creating serviceaccount {namespace}/default"), e))
    }

    async fn wire_pod(
        &self,
        node: &LocalNode,
        spec: &PodSpec,
        host: u8,
    ) -> Result<LocalPod, LocalError> {
        let (pods, what) = self.create_pod_object(spec).await?;

        let ns_name = pod_namespace_name(&self.config.run_id, node.addressing.index, host);
        let _ = NetNamespace::delete_by_name(&ns_name);
        let netns = self
            .running
            .lock()
            .await
            .registry
            .create_namespace(&ns_name, NamespaceKind::Pod)?;
        let ip = node.addressing.pod_ip(host);
        let link = PodLink {
            node_interface: pod_interface_name(host),
            pod_interface: "eth0".into(),
            gateway: node.addressing.gateway(),
            pod_ip: ip,
        };
        connect_pod(&node.netns, &netns, &link).await?;

        let status = pod_status_patch(spec.phase, ip, node.addressing.host_ip(), &now_rfc3339());
        pods.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(|e| LocalError::kube(format!("setting the status of {what}"), e))?;
        Ok(LocalPod {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            node: node.name.clone(),
            ip,
            netns,
            host,
        })
    }

    /// Creates the Pod object of `spec` (owned through a generated uid); returns its API and a
    /// name for messages.
    async fn create_pod_object(&self, spec: &PodSpec) -> Result<(Api<Pod>, String), LocalError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &spec.namespace);
        let object: Pod =
            serde_json::from_value(pod_object(spec, &uuid::Uuid::new_v4().to_string())).map_err(
                |e| LocalError::Parse {
                    what: format!("pod {}", spec.name),
                    message: e.to_string(),
                },
            )?;
        let what = format!("pod {}/{}", spec.namespace, spec.name);
        pods.create(&PostParams::default(), &object)
            .await
            .map_err(|e| LocalError::kube(format!("creating {what}"), e))?;
        Ok((pods, what))
    }

    async fn unwire_pod(
        &self,
        namespace: &str,
        name: &str,
        node: &LocalNode,
        host: u8,
    ) -> Result<(), LocalError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        let deleted = match pods.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(LocalError::kube(
                format!("deleting pod {namespace}/{name}"),
                e,
            )),
        };
        let ns_name = pod_namespace_name(&self.config.run_id, node.addressing.index, host);
        // Delete the veth explicitly: a namespace (and its veth end) outlives its name while any
        // descriptor, e.g. a caller's `LocalPod`, still refers to it.
        let unlinked = match node.netns.netlink().await {
            Ok(netlink) => netlink.delete_link(&pod_interface_name(host)).await,
            Err(e) => Err(e),
        };
        let mut running = self.running.lock().await;
        let removed = running.registry.delete_namespace(&ns_name);
        if let Some(pool) = running.pods.pools.get_mut(&node.name) {
            pool.release(host);
        }
        deleted?;
        removed?;
        Ok(unlinked?)
    }
}

/// The node-side interface name of pod `host`.
fn pod_interface_name(host: u8) -> String {
    format!("vp{host}")
}

/// The namespace name of pod `host` on node `index`.
fn pod_namespace_name(run_id: &str, index: u8, host: u8) -> String {
    namespace_name(run_id, &format!("pod-{index}-{host}"))
}

async fn create_if_missing<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_namespaces_are_named_by_node_and_host() {
        assert_eq!(pod_namespace_name("abc123", 2, 7), "podid-abc123-pod-2-7");
    }
}
