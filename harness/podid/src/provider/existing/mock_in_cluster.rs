//! The mock cloud installed into a cluster whose nodes are not Azure machines (`--cloud mock`):
//! one Deployment serving AAD, ARM and Blob (behind Services whose addresses pods resolve the
//! real host names to) and one IMDS port per node; podid drives it through its control port,
//! reached by port-forward. Each node's 169.254.169.254 goes to that node's IMDS through the
//! node agent, which refuses where a real metadata service answers; every node then proves,
//! with a nonce the mock must log under that node, that it reaches the mock (fail closed).
//! Everything lives in the run's own namespace and goes with it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use podid_wait::{Check, Poll};
use serde_json::{Value, json};

use super::node_agent::{self, AgentRole, NODE_AGENT};
use super::nodes::ClusterNode;
use super::port_forward::PortForward;
use crate::provider::error::ProviderError;
use crate::provider::kube_cluster::ServiceHosts;
use crate::provider::mock_backend::MockBackend;
use crate::provider::mock_world::{AAD_HOST, ARM_HOST, PlannedMachine};

const MOCK: &str = "podid-mock-cloud";
const CONTROL_PORT: u16 = 8090;
const AAD_PORT: u16 = 8443;
const ARM_PORT: u16 = 8444;
const BLOB_PORT: u16 = 8445;
const FIRST_IMDS_PORT: u16 = 8100;
/// The label carrying the run id on everything podid puts in a cluster.
pub const RUN_LABEL: &str = "podid.dev/run";

/// What the in-cluster mock needs.
pub struct InClusterMockConfig<'a> {
    pub run_id: &'a str,
    pub namespace: &'a str,
    pub image: &'a str,
    pub pull_policy: &'a str,
    /// The cloud it starts with (machines, MIC's principal, the cluster identity).
    pub spec: &'a podid_mocks::CloudSpec,
    /// The nodes with the machine each stands for.
    pub nodes: &'a [(ClusterNode, PlannedMachine)],
    pub timeout: Duration,
}

/// The mock cloud running in the cluster.
pub struct InClusterMock {
    pub backend: MockBackend,
    pub hosts: ServiceHosts,
    pub ca_pem: String,
    /// The agent pod on each node, by node name.
    pub agents: BTreeMap<String, String>,
    /// Kept alive: the control connection goes through it.
    _forward: PortForward,
}

fn machine_arg(machine: &crate::provider::cluster::Machine) -> String {
    match machine {
        crate::provider::cluster::Machine::ScaleSetInstance {
            scale_set,
            instance,
        } => format!("{scale_set}/{instance}"),
        crate::provider::cluster::Machine::VirtualMachine { name } => name.clone(),
    }
}

/// The namespace object of a run (labelled, so leftovers can be found).
pub fn namespace_object(namespace: &str, run_id: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": namespace, "labels": {
            "app.kubernetes.io/managed-by": "podid", RUN_LABEL: run_id
        } }
    })
}

/// The mock's Secret (its cloud, with MIC's secret), Deployment and Services.
pub fn mock_objects(config: &InClusterMockConfig<'_>) -> Result<Vec<Value>, ProviderError> {
    let ns = config.namespace;
    let cloud = serde_json::to_string(config.spec)
        .map_err(|e| ProviderError::new("writing the mock cloud's description", e))?;
    let mut args: Vec<String> = ["mock", "serve", "--config", "/etc/podid-mock/cloud.json"]
        .map(String::from)
        .to_vec();
    args.extend([
        format!("--aad=0.0.0.0:{AAD_PORT}"),
        format!("--arm=0.0.0.0:{ARM_PORT}"),
        format!("--blob=0.0.0.0:{BLOB_PORT}"),
        format!("--control=127.0.0.1:{CONTROL_PORT}"),
    ]);
    for (i, (node, machine)) in config.nodes.iter().enumerate() {
        args.push(format!(
            "--imds={}@{}=0.0.0.0:{}",
            node.logical,
            machine_arg(&machine.machine),
            FIRST_IMDS_PORT + i as u16
        ));
    }
    let labels = json!({ "app": MOCK, "app.kubernetes.io/managed-by": "podid" });
    let service = |name: &str, port: u16| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": name, "namespace": ns, "labels": labels },
            "spec": { "selector": { "app": MOCK }, "ports": [{ "port": 443, "targetPort": port, "protocol": "TCP" }] }
        })
    };
    Ok(vec![
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": MOCK, "namespace": ns, "labels": labels },
            "stringData": { "cloud.json": cloud }
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": MOCK, "namespace": ns, "labels": labels },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": { "app": MOCK } },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "containers": [{
                            "name": MOCK,
                            "image": config.image,
                            "imagePullPolicy": config.pull_policy,
                            "command": ["podid"],
                            "args": args,
                            "readinessProbe": { "tcpSocket": { "port": AAD_PORT }, "periodSeconds": 1 },
                            "volumeMounts": [{ "name": "cloud", "mountPath": "/etc/podid-mock", "readOnly": true }]
                        }],
                        "volumes": [{ "name": "cloud", "secret": { "secretName": MOCK } }]
                    }
                }
            }
        }),
        service("podid-mock-aad", AAD_PORT),
        service("podid-mock-arm", ARM_PORT),
        service("podid-mock-blob", BLOB_PORT),
    ])
}

async fn apply(client: &kube::Client, objects: &[Value]) -> Result<(), ProviderError> {
    podid_incluster::apply_objects(client, objects, &Default::default())
        .await
        .map(|_| ())
        .map_err(|e| ProviderError::new("installing the mock cloud into the cluster", e))
}

/// Waits for a ready pod with label `app=<app>` and returns it.
pub async fn ready_pods(
    client: &kube::Client,
    namespace: &str,
    app: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Pod>, ProviderError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("app={app}"));
    podid_wait::until(Poll::every(Duration::from_millis(500), timeout), || {
        let api = api.clone();
        let lp = lp.clone();
        async move {
            let pods = match api.list(&lp).await {
                Ok(p) => p.items,
                Err(e) => return Check::Pending(format!("listing pods: {e}")),
            };
            for pod in &pods {
                if let Some(failure) = refusal(pod) {
                    return Check::Failed(failure);
                }
                if let Some(failure) = podid_incluster::pod_status::permanent_failure(pod) {
                    return Check::Failed(failure);
                }
            }
            let ready: Vec<Pod> = pods
                .iter()
                .filter(|p| podid_incluster::pod_status::is_ready(p))
                .cloned()
                .collect();
            if ready.len() >= count {
                Check::Done(ready)
            } else {
                Check::Pending(
                    pods.iter()
                        .map(podid_incluster::pod_status::describe)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }
        }
    })
    .await
    .map_err(|e| {
        ProviderError::plain(format!(
            "{app} did not become ready within {}s: {}",
            timeout.as_secs(),
            e.into_state()
        ))
    })
}

/// The agent's refusal, when its container ended saying a real metadata service answers.
fn refusal(pod: &Pod) -> Option<String> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses.iter().find_map(|s| {
        let ended = s
            .state
            .as_ref()
            .and_then(|st| st.terminated.as_ref())
            .or_else(|| s.last_state.as_ref()?.terminated.as_ref())?;
        let message = ended.message.as_deref().unwrap_or_default();
        (ended.exit_code == 3 || message.contains("refusing")).then(|| message.trim().to_string())
    })
}

async fn service_ip(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<IpAddr, ProviderError> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let svc = api
        .get(name)
        .await
        .map_err(|e| ProviderError::new(format!("reading service {namespace}/{name}"), e))?;
    svc.spec
        .and_then(|s| s.cluster_ip)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| {
            ProviderError::plain(format!("service {namespace}/{name} has no cluster IP"))
        })
}

/// Installs the mock cloud and the metadata redirect, and proves every node reaches its own
/// mock IMDS. On failure the caller deletes the namespace.
pub async fn install(
    client: &kube::Client,
    config: &InClusterMockConfig<'_>,
) -> Result<InClusterMock, ProviderError> {
    let ns = config.namespace;
    apply(client, &[namespace_object(ns, config.run_id)]).await?;
    apply(client, &mock_objects(config)?).await?;
    let mock = ready_pods(client, ns, MOCK, 1, config.timeout).await?;
    let pod = &mock[0];
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .ok_or_else(|| ProviderError::plain("the mock cloud's pod has no IP"))?;
    let forward = PortForward::start(client, ns, &pod_name, CONTROL_PORT).await?;
    let url = url::Url::parse(&format!("http://{}/", forward.local_addr()))
        .map_err(|e| ProviderError::new("forming the control URL", e))?;
    let backend = MockBackend::connect_remote(url, config.timeout)
        .await
        .map_err(|e| ProviderError::new("reaching the mock cloud's control port", e))?;
    let remote = backend.remote().expect("a remote backend");
    let ca_pem = remote.ca_pem().to_string();

    let proof = uuid::Uuid::new_v4().simple().to_string();
    let targets: BTreeMap<String, String> = config
        .nodes
        .iter()
        .enumerate()
        .map(|(i, (node, _))| {
            (
                node.name.clone(),
                format!("{pod_ip}:{}", FIRST_IMDS_PORT + i as u16),
            )
        })
        .collect();
    let names: Vec<String> = config.nodes.iter().map(|(n, _)| n.name.clone()).collect();
    let agent = node_agent::daemon_set(
        ns,
        config.image,
        config.pull_policy,
        &names,
        &AgentRole::RedirectImds {
            targets,
            proof: proof.clone(),
        },
    );
    apply(client, &[agent]).await?;
    ready_pods(client, ns, NODE_AGENT, names.len(), config.timeout).await?;
    prove_each_node(remote, config.nodes, &proof).await?;
    let agents = node_agent::agent_pods(client, ns)
        .await?
        .into_iter()
        .map(|(node, pod)| (node, pod.metadata.name.unwrap_or_default()))
        .collect();

    let aad = service_ip(client, ns, "podid-mock-aad").await?;
    let arm = service_ip(client, ns, "podid-mock-arm").await?;
    let blob = service_ip(client, ns, "podid-mock-blob").await?;
    Ok(InClusterMock {
        hosts: ServiceHosts {
            services: vec![(aad, AAD_HOST.to_string()), (arm, ARM_HOST.to_string())],
            blob: Some(blob),
        },
        ca_pem,
        backend,
        agents,
        _forward: forward,
    })
}

/// Fails closed: the mock must have logged each node's proof request under that node.
async fn prove_each_node(
    remote: &podid_mocks::control::RemoteMockCloud,
    nodes: &[(ClusterNode, PlannedMachine)],
    proof: &str,
) -> Result<(), ProviderError> {
    let requests = remote
        .requests_since(0)
        .await
        .map_err(|e| ProviderError::new("reading the mock cloud's request log", e))?;
    for (node, _) in nodes {
        let nonce = format!("{proof}-{}", node.name);
        let seen = requests.iter().find(|r| {
            r.service == podid_mocks::Service::Imds && r.query.iter().any(|(_, v)| v == &nonce)
        });
        match seen {
            Some(r) if r.label == node.logical => {}
            Some(r) => {
                return Err(ProviderError::plain(format!(
                    "node {} reached the mock IMDS of {} instead of its own ({}); refusing to run",
                    node.name, r.label, node.logical
                )));
            }
            None => {
                return Err(ProviderError::plain(format!(
                    "node {}: 169.254.169.254 did not reach podid's mock IMDS; refusing to run so that nothing reaches a real metadata service",
                    node.name
                )));
            }
        }
    }
    Ok(())
}

/// Deletes the run's namespace (the mock, the agents, which take their redirect out as they
/// stop) and waits until it is gone.
pub async fn remove(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> Result<(), ProviderError> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.delete(namespace, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => {
            return Err(ProviderError::new(
                format!("deleting namespace {namespace}"),
                e,
            ));
        }
    }
    podid_wait::until(Poll::every(Duration::from_millis(500), timeout), || {
        let api = api.clone();
        async move {
            match api.get_opt(namespace).await {
                Ok(None) => Check::Done(()),
                Ok(Some(_)) => Check::Pending(format!("namespace {namespace} is terminating")),
                Err(e) => Check::Pending(format!("reading namespace {namespace}: {e}")),
            }
        }
    })
    .await
    .map_err(|e| ProviderError::plain(format!("{} after {}s", e.into_state(), timeout.as_secs())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::cluster::Machine;

    #[test]
    fn the_mock_serves_one_imds_per_node_under_its_logical_name_and_control_on_loopback() {
        let spec = podid_mocks::CloudSpec::default();
        let nodes = vec![
            (
                ClusterNode {
                    logical: "node-0".into(),
                    name: "w1".into(),
                    address: None,
                    azure: None,
                },
                PlannedMachine {
                    machine: Machine::ScaleSetInstance {
                        scale_set: "pool0".into(),
                        instance: 0,
                    },
                    resource_group: "rg".into(),
                },
            ),
            (
                ClusterNode {
                    logical: "node-1".into(),
                    name: "w2".into(),
                    address: None,
                    azure: None,
                },
                PlannedMachine {
                    machine: Machine::VirtualMachine { name: "w2".into() },
                    resource_group: "rg".into(),
                },
            ),
        ];
        let config = InClusterMockConfig {
            run_id: "abc123",
            namespace: "podid-abc123",
            image: "img",
            pull_policy: "IfNotPresent",
            spec: &spec,
            nodes: &nodes,
            timeout: Duration::from_secs(1),
        };
        let objects = mock_objects(&config).unwrap();
        let args = &objects[1]["spec"]["template"]["spec"]["containers"][0]["args"];
        let args: Vec<&str> = args
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        assert!(args.contains(&"--imds=node-0@pool0/0=0.0.0.0:8100"));
        assert!(args.contains(&"--imds=node-1@w2=0.0.0.0:8101"));
        assert!(args.contains(&"--control=127.0.0.1:8090"));
        assert_eq!(objects.len(), 5);
    }
}
