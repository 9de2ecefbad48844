//! A cluster side for testing the runner without root: API objects live in memory, and a
//! pod's probe runs in-process against its node's own mock IMDS, served by the real mock cloud
//! on loopback. Components are in-memory state (up or down, their chains, their `/healthz`
//! answers). Switches make it misbehave in the ways the runner must handle.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::SystemTime;

use clap::Parser;
use podid_mocks::{CloudSpec, Endpoint, MachineKind, MockCloud, ServerHandle, VirtualMachine};
use podid_mocks::{UserAssignedIdentity, resource_id};
use podid_probe::{ProbeArgs, ProbeReport};
use podid_scenario::{Component, LOGICAL_NODES, LifecycleAction, MicReplica};
use serde_json::Value;

use super::Provider;
use super::capability::{Capabilities, Capability};
use super::cloud::{
    CloudNames, CloudSide, DeclaredCloud, IdentityValues, MachineIdentities, RequestLog, RoleChange,
};
use super::cluster::{
    ClusterIdentity, ClusterSide, ComponentRef, ConfigureReport, HealthAnswer, IdentityConfig,
    Machine, NmiStopCheck, NodeInfo, PodHandle, PodRequest, SavedFile, ShutdownReport,
};
use super::error::ProviderError;
use super::mock_cloud::{MockCloudSide, machine_ref};
use super::objects::{ObjectKey, ObjectStore};

/// API objects in a map.
#[derive(Default)]
pub struct MemoryObjects {
    objects: Mutex<HashMap<ObjectKey, Value>>,
    /// Makes every delete fail (a cluster that cannot clean up).
    pub fail_deletes: AtomicBool,
}

#[async_trait::async_trait]
impl ObjectStore for MemoryObjects {
    async fn apply(&self, object: &Value) -> Result<ObjectKey, ProviderError> {
        let key = ObjectKey::of_value(object)?;
        self.objects
            .lock()
            .unwrap()
            .insert(key.clone(), object.clone());
        Ok(key)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<bool, ProviderError> {
        if self.fail_deletes.load(Ordering::SeqCst) {
            return Err(ProviderError::plain(format!("deleting {key}: refused")));
        }
        Ok(self.objects.lock().unwrap().remove(key).is_some())
    }

    async fn merge_patch(&self, key: &ObjectKey, _patch: &Value) -> Result<(), ProviderError> {
        match self.objects.lock().unwrap().contains_key(key) {
            true => Ok(()),
            false => Err(ProviderError::plain(format!("patching {key}: not found"))),
        }
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool, ProviderError> {
        Ok(self.objects.lock().unwrap().contains_key(key))
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, ProviderError> {
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }

    async fn list(&self, key: &ObjectKey) -> Result<Vec<Value>, ProviderError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(k, _)| {
                k.api_version == key.api_version
                    && k.kind == key.kind
                    && k.namespace == key.namespace
            })
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn dump_namespace(&self, namespace: &str) -> Value {
        let objects = self.objects.lock().unwrap();
        Value::Array(
            objects
                .iter()
                .filter(|(k, _)| k.namespace.as_deref() == Some(namespace))
                .map(|(_, v)| v.clone())
                .collect(),
        )
    }
}

/// The fake cluster side.
pub struct FakeCluster {
    pub capabilities: Capabilities,
    nodes: Vec<NodeInfo>,
    /// Each logical node's IMDS address on loopback.
    imds: HashMap<String, String>,
    _servers: Vec<ServerHandle>,
    pub objects: MemoryObjects,
    pods: Mutex<Vec<PodHandle>>,
    next_ip: AtomicU8,
    /// Every configuration asked for, in order.
    pub configured: Mutex<Vec<IdentityConfig>>,
    /// Report NMI as having left its chain behind whenever it is reconfigured.
    pub nmi_leaves_chain: AtomicBool,
    /// Probes from pods on this node reach nothing (a closed port).
    pub unreachable_node: Mutex<Option<String>>,
    /// Every pod created, in order (members of a group included).
    pub created_pods: Mutex<Vec<PodRequest>>,
    /// How many `create_pod` calls ran at the same time, at most.
    pub most_pods_at_once: AtomicU8,
    creating: AtomicU8,
    /// Every lifecycle call, in order.
    pub lifecycle_calls: Mutex<Vec<(LifecycleAction, ComponentRef)>>,
    /// Instances that are down (`nmi@node-0`, `mic#0`, `apiserver`).
    pub down: Mutex<HashSet<String>>,
    /// Logical nodes whose NMI chain is gone (NMI stopped gracefully removes it).
    pub chains_gone: Mutex<HashSet<String>>,
    /// Every configuration `recover` was asked for.
    pub recovered: Mutex<Vec<IdentityConfig>>,
    /// Makes `recover` fail.
    pub recover_fails: AtomicBool,
    /// The cluster identity the fake offers (declared in the mock cloud, on no machine).
    pub cluster_identity: ClusterIdentity,
}

impl FakeCluster {
    /// The instances a component reference addresses under the current configuration.
    fn instances(&self, target: &ComponentRef) -> Vec<String> {
        match target.component {
            Component::Nmi => self
                .nodes
                .iter()
                .filter(|n| target.node.as_ref().is_none_or(|t| *t == n.logical))
                .map(|n| format!("nmi@{}", n.logical))
                .collect(),
            Component::Mic => {
                let replicas = self
                    .configured
                    .lock()
                    .unwrap()
                    .last()
                    .map_or(1, |c| c.mic_replicas.max(1));
                (0..replicas)
                    .filter(|i| match target.replica {
                        None => true,
                        Some(MicReplica::Leader) => *i == 0,
                        Some(MicReplica::Follower) => *i != 0,
                    })
                    .map(|i| format!("mic#{i}"))
                    .collect()
            }
            Component::Apiserver => vec!["apiserver".into()],
        }
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
    listener.local_addr().expect("local addr").port()
}

/// A fake provider: the fake cluster side and the real mock cloud (optionally without its
/// request log), its IMDS per node served on loopback.
pub async fn provider(with_request_log: bool) -> (Provider, &'static FakeCluster) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let machines: Vec<Machine> = LOGICAL_NODES
        .iter()
        .map(|n| Machine::ScaleSetInstance {
            scale_set: format!("pool-{n}"),
            instance: 0,
        })
        .collect();
    let subscription_id = uuid::Uuid::new_v4().to_string();
    let cluster_identity = ClusterIdentity {
        client_id: uuid::Uuid::new_v4().to_string(),
        principal_id: uuid::Uuid::new_v4().to_string(),
        resource_id: resource_id::user_assigned_identity(
            &subscription_id,
            "fake-nodes",
            "fake-agentpool",
        ),
    };
    let spec = CloudSpec {
        tenant_id: uuid::Uuid::new_v4().to_string(),
        subscription_id,
        identities: vec![UserAssignedIdentity {
            name: "fake-agentpool".into(),
            resource_group: "fake-nodes".into(),
            client_id: cluster_identity.client_id.clone(),
            principal_id: cluster_identity.principal_id.clone(),
        }],
        machines: machines
            .iter()
            .map(|m| VirtualMachine {
                name: machine_ref(m).name,
                resource_group: "fake-nodes".into(),
                kind: MachineKind::ScaleSet { instances: 1 },
                system_assigned: None,
                user_assigned: Vec::new(),
                location: "eastus".into(),
                provisioning_state: "Succeeded".into(),
            })
            .collect(),
        ..CloudSpec::default()
    };
    let cloud = MockCloud::new(spec).expect("mock cloud");
    let mut servers = Vec::new();
    let mut imds = HashMap::new();
    let mut nodes = Vec::new();
    for (logical, machine) in LOGICAL_NODES.iter().zip(machines) {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let endpoint = Endpoint::Imds {
            machine: machine_ref(&machine),
            label: logical.to_string(),
        };
        let server = cloud.serve(endpoint, listener).await.expect("serve IMDS");
        imds.insert(logical.to_string(), server.url());
        servers.push(server);
        nodes.push(NodeInfo {
            logical: logical.to_string(),
            name: format!("fake-{logical}"),
            machine,
            address: None,
        });
    }
    // Leaked so tests can flip the switches while the provider owns the side: a test's memory.
    let cluster: &'static FakeCluster = Box::leak(Box::new(FakeCluster {
        capabilities: Capabilities::of([
            Capability::ManagedMode,
            Capability::StandardMode,
            Capability::ComponentFlags,
            Capability::PerNodeMachines,
            Capability::Restarts,
            Capability::MicReplicas,
            Capability::HealthEndpoints,
            Capability::NodeIptables,
            Capability::PendingPods,
            Capability::ClusterIdentity,
        ]),
        nodes,
        imds,
        _servers: servers,
        objects: MemoryObjects::default(),
        pods: Mutex::new(Vec::new()),
        next_ip: AtomicU8::new(2),
        configured: Mutex::new(Vec::new()),
        nmi_leaves_chain: AtomicBool::new(false),
        unreachable_node: Mutex::new(None),
        created_pods: Mutex::new(Vec::new()),
        most_pods_at_once: AtomicU8::new(0),
        creating: AtomicU8::new(0),
        lifecycle_calls: Mutex::new(Vec::new()),
        down: Mutex::new(HashSet::new()),
        chains_gone: Mutex::new(HashSet::new()),
        recovered: Mutex::new(Vec::new()),
        recover_fails: AtomicBool::new(false),
        cluster_identity,
    }));
    let mock = MockCloudSide::new(cloud);
    let cloud_side: Box<dyn CloudSide> = if with_request_log {
        Box::new(mock)
    } else {
        Box::new(WithoutRequestLog(mock))
    };
    (
        Provider::new("fake", Box::new(SharedCluster(cluster)), cloud_side),
        cluster,
    )
}

/// The provider's handle on the leaked fake.
struct SharedCluster(&'static FakeCluster);

#[async_trait::async_trait]
impl ClusterSide for SharedCluster {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities.clone()
    }

    fn nodes(&self) -> &[NodeInfo] {
        &self.0.nodes
    }

    fn environment(&self) -> Vec<(String, String)> {
        vec![("nmi".into(), "fake".into())]
    }

    fn objects(&self) -> &dyn ObjectStore {
        &self.0.objects
    }

    fn ca_file(&self) -> Option<&Path> {
        None
    }

    async fn configure(&self, config: &IdentityConfig) -> Result<ConfigureReport, ProviderError> {
        let mut configured = self.0.configured.lock().unwrap();
        let stopped = !configured.is_empty();
        configured.push(config.clone());
        let nmi_stops = match stopped {
            false => Vec::new(),
            true => self
                .0
                .nodes
                .iter()
                .map(|n| NmiStopCheck {
                    node: n.logical.clone(),
                    removed_own_chain: !self.0.nmi_leaves_chain.load(Ordering::SeqCst),
                })
                .collect(),
        };
        Ok(ConfigureReport { nmi_stops })
    }

    async fn ensure_namespace(&self, _namespace: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn create_pod(&self, request: &PodRequest) -> Result<PodHandle, ProviderError> {
        let now = self.0.creating.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.most_pods_at_once.fetch_max(now, Ordering::SeqCst);
        // Long enough for the runner's other creations to start meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.0.creating.fetch_sub(1, Ordering::SeqCst);
        self.0.created_pods.lock().unwrap().push(request.clone());
        let host = self.0.next_ip.fetch_add(1, Ordering::SeqCst);
        let pod = PodHandle {
            namespace: request.namespace.clone(),
            name: request.name.clone(),
            node: request.node.clone(),
            ip: IpAddr::V4(Ipv4Addr::new(10, 244, 0, host)),
        };
        self.0.pods.lock().unwrap().push(pod.clone());
        Ok(pod)
    }

    async fn delete_pod(&self, pod: &PodHandle) -> Result<(), ProviderError> {
        self.0.pods.lock().unwrap().retain(|p| p != pod);
        Ok(())
    }

    async fn run_probe(
        &self,
        pod: &PodHandle,
        args: &[String],
    ) -> Result<ProbeReport, ProviderError> {
        // Storage URLs name real Azure hosts: the fake must never let a probe reach them.
        if args.first().map(String::as_str) != Some("token") {
            return Err(ProviderError::plain(
                "the fake cluster runs token probes only",
            ));
        }
        let unreachable = self.0.unreachable_node.lock().unwrap().clone();
        let endpoint = match unreachable.as_deref() == Some(pod.node.as_str()) {
            true => format!("http://127.0.0.1:{}", closed_port()),
            false => self.0.imds[&pod.node].clone(),
        };
        let argv = std::iter::once("podid-probe".to_string())
            .chain(args.iter().cloned())
            .chain(["--endpoint".to_string(), endpoint]);
        let parsed = ProbeArgs::try_parse_from(argv)
            .map_err(|e| ProviderError::new("parsing the probe's arguments", e))?;
        Ok(podid_probe::cli::run(parsed).await)
    }

    async fn save_diagnostics(&self, _since: SystemTime, _dir: &Path) -> Vec<SavedFile> {
        Vec::new()
    }

    async fn shutdown(&self) -> ShutdownReport {
        ShutdownReport::default()
    }

    fn cluster_identity(&self) -> Option<ClusterIdentity> {
        Some(self.0.cluster_identity.clone())
    }

    async fn lifecycle(
        &self,
        action: LifecycleAction,
        target: &ComponentRef,
    ) -> Result<(), ProviderError> {
        self.0
            .lifecycle_calls
            .lock()
            .unwrap()
            .push((action, target.clone()));
        let instances = self.0.instances(target);
        let mut down = self.0.down.lock().unwrap();
        let mut gone = self.0.chains_gone.lock().unwrap();
        for instance in instances {
            let node = instance.strip_prefix("nmi@").map(String::from);
            match action {
                LifecycleAction::Stop | LifecycleAction::Kill => {
                    down.insert(instance);
                    // Only a graceful stop lets NMI remove its chain.
                    if let (LifecycleAction::Stop, Some(node)) = (action, node) {
                        gone.insert(node);
                    }
                }
                LifecycleAction::Start | LifecycleAction::Restart => {
                    down.remove(&instance);
                    if let Some(node) = node {
                        gone.remove(&node);
                    }
                }
            }
        }
        Ok(())
    }

    async fn recover(&self, config: &IdentityConfig) -> Result<ConfigureReport, ProviderError> {
        self.0.recovered.lock().unwrap().push(config.clone());
        if self.0.recover_fails.load(Ordering::SeqCst) {
            return Err(ProviderError::plain("recovering: NMI would not start"));
        }
        self.0.down.lock().unwrap().clear();
        self.0.chains_gone.lock().unwrap().clear();
        Ok(ConfigureReport::default())
    }

    async fn health(&self, target: &ComponentRef) -> Result<Vec<HealthAnswer>, ProviderError> {
        let down = self.0.down.lock().unwrap();
        Ok(self
            .0
            .instances(target)
            .into_iter()
            .map(|instance| {
                let (status, body) = match (down.contains(&instance), instance.as_str()) {
                    (true, _) => (503, "down".to_string()),
                    (false, "mic#0") | (false, "apiserver") => (200, "Active".to_string()),
                    (false, i) if i.starts_with("mic#") => (200, "Not Active".to_string()),
                    (false, _) => (200, "Active".to_string()),
                };
                HealthAnswer {
                    instance,
                    status,
                    body,
                }
            })
            .collect())
    }

    async fn nmi_chain_present(&self, node: &str) -> Result<bool, ProviderError> {
        Ok(!self.0.chains_gone.lock().unwrap().contains(node))
    }
}

/// The mock cloud without its request log: a cloud side like real Azure's in that respect.
struct WithoutRequestLog(MockCloudSide);

#[async_trait::async_trait]
impl CloudSide for WithoutRequestLog {
    fn capabilities(&self) -> Capabilities {
        Capabilities::of([Capability::CloudChanges])
    }
    fn tenant_id(&self) -> String {
        self.0.tenant_id()
    }
    fn subscription_id(&self) -> String {
        self.0.subscription_id()
    }
    fn account_url(&self, account: &str) -> String {
        self.0.account_url(account)
    }
    async fn declare(
        &self,
        cloud: &podid_scenario::Cloud,
        names: &CloudNames,
    ) -> Result<DeclaredCloud, ProviderError> {
        self.0.declare(cloud, names).await
    }
    async fn assign_identity(&self, machine: &Machine, id: &str) -> Result<(), ProviderError> {
        self.0.assign_identity(machine, id).await
    }
    async fn unassign_identity(&self, machine: &Machine, id: &str) -> Result<(), ProviderError> {
        self.0.unassign_identity(machine, id).await
    }
    async fn enable_system_assigned(&self, machine: &Machine) -> Result<String, ProviderError> {
        self.0.enable_system_assigned(machine).await
    }
    async fn machine_identities(
        &self,
        machine: &Machine,
    ) -> Result<MachineIdentities, ProviderError> {
        self.0.machine_identities(machine).await
    }
    async fn change_role(&self, change: &RoleChange, add: bool) -> Result<(), ProviderError> {
        self.0.change_role(change, add).await
    }
    async fn delete_identity(&self, identity: &IdentityValues) -> Result<(), ProviderError> {
        self.0.delete_identity(identity).await
    }
    async fn recreate_identity(
        &self,
        identity: &IdentityValues,
    ) -> Result<IdentityValues, ProviderError> {
        self.0.recreate_identity(identity).await
    }
    async fn signing_keys(&self) -> Result<Value, ProviderError> {
        self.0.signing_keys().await
    }
    fn request_log(&self) -> Option<&dyn RequestLog> {
        None
    }
}
