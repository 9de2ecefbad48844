//! A cluster side for testing the runner without root: API objects live in memory, and a
//! pod's probe runs in-process against its node's own mock IMDS, served by the real mock cloud
//! on loopback. Switches make it misbehave in the ways the runner must handle.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::SystemTime;

use clap::Parser;
use podid_mocks::{CloudSpec, Endpoint, MachineKind, MockCloud, ServerHandle, VirtualMachine};
use podid_probe::{ProbeArgs, ProbeReport};
use podid_scenario::LOGICAL_NODES;
use serde_json::Value;

use super::Provider;
use super::capability::{Capabilities, Capability};
use super::cloud::{CloudNames, CloudSide, DeclaredCloud, RequestLog};
use super::cluster::{
    ClusterSide, ConfigureReport, IdentityConfig, Machine, NmiStopCheck, NodeInfo, PodHandle,
    PodRequest, SavedFile, ShutdownReport,
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
    let spec = CloudSpec {
        tenant_id: uuid::Uuid::new_v4().to_string(),
        subscription_id: uuid::Uuid::new_v4().to_string(),
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
        });
    }
    // Leaked so tests can flip the switches while the provider owns the side: a test's memory.
    let cluster: &'static FakeCluster = Box::leak(Box::new(FakeCluster {
        capabilities: Capabilities::of([
            Capability::ManagedMode,
            Capability::StandardMode,
            Capability::ComponentFlags,
            Capability::PerNodeMachines,
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
    async fn signing_keys(&self) -> Result<Value, ProviderError> {
        self.0.signing_keys().await
    }
    fn request_log(&self) -> Option<&dyn RequestLog> {
        None
    }
}
