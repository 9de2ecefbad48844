//! The state one trial's steps share: the scenario instance, what it created (for cleanup), its
//! window on the cloud's request log, and the saving of failure diagnostics.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use podid_reports::{Attachment, StepReport};
use podid_scenario::Scenario;
use podid_wait::{Check, Poll};
use serde_json::Value;

use super::Environment;
use super::attribution::Attribution;
use super::error::StepError;
use crate::instance::ScenarioInstance;
use crate::objects;
use crate::provider::{CloudBehaviour, CloudRequest, FaultHandle, Machine, ObjectKey, PodHandle};

/// How long a trial that needs MIC to itself waits for MIC to finish earlier trials' work.
const QUIET_MIC: Duration = Duration::from_secs(90);

/// What a trial created or changed, so cleanup can undo it whatever happened.
#[derive(Default)]
pub(super) struct Created {
    /// In creation order; removed in reverse.
    pub objects: Vec<ObjectKey>,
    /// Identities the trial put on machines (setup or `cloud: assign`); taken off at the end.
    pub assignments: Vec<(Machine, String)>,
    /// Identities the trial took off machines that held them before it (the cluster
    /// identity); put back at the end.
    pub removals: Vec<(Machine, String)>,
    /// Machines whose system-assigned identity the trial enabled; disabled at the end.
    pub system_assigned: Vec<Machine>,
    /// The scenario's faults, in place for the whole trial.
    pub faults: Vec<FaultHandle>,
    /// The trial changed the cloud's behaviour; the usual one is restored at the end.
    pub behaviour: bool,
}

/// The run state of one trial, shared by its steps.
pub(crate) struct ScenarioRun<'a> {
    pub env: &'a Environment,
    pub scenario: &'a Scenario,
    pub inst: ScenarioInstance,
    /// Whether other trials may run beside this one: its `requests` expectations then count
    /// only the requests attributed to it.
    pub shared: bool,
    /// The request log's cursor when the trial began (after it was let through the gate).
    pub first_request: Option<u64>,
    /// The JWKS that verifies the cloud's tokens, read once per trial.
    pub signing_keys: Option<Value>,
    /// A lifecycle step stopped, killed or restarted a component: the trial ends with
    /// `ClusterSide::recover`.
    pub needs_recover: bool,
    pub(super) created: Created,
}

impl<'a> ScenarioRun<'a> {
    pub fn new(
        env: &'a Environment,
        scenario: &'a Scenario,
        inst: ScenarioInstance,
        shared: bool,
    ) -> Self {
        Self {
            env,
            scenario,
            inst,
            shared,
            first_request: None,
            signing_keys: None,
            needs_recover: false,
            created: Created::default(),
        }
    }

    /// Declares the scenario's cloud under the run's names and reads the signing keys: all
    /// that `${identities.*}` and friends need, so it can happen before the trial's NMI/MIC
    /// configuration is known.
    pub async fn declare_cloud(&mut self) -> Result<(), StepError> {
        let provider = &self.env.provider;
        let declared = provider
            .cloud
            .declare(&self.scenario.cloud, &self.inst.cloud_names())
            .await?;
        self.inst.record_declared(declared);
        self.signing_keys = match provider.cloud.signing_keys().await {
            Ok(keys) => Some(keys),
            Err(e) => {
                tracing::warn!(
                    "reading the cloud's signing keys: {}",
                    crate::provider::error_chain(&e)
                );
                None
            }
        };
        Ok(())
    }

    /// Marks the start of the trial proper (it is through the gate): requests before this
    /// are not its.
    pub fn begin(&mut self) {
        self.first_request = self.env.provider.request_cursor();
    }

    /// Sets the cloud's behaviour and puts the scenario's faults in place (both for the whole
    /// trial, setup included), assigns node identities, creates the namespace, objects and pods.
    pub async fn setup(&mut self) -> Result<(), StepError> {
        let provider = &self.env.provider;
        if super::faults::needs_quiet_mic(self.scenario) {
            self.await_quiet_mic(self.env.scaled(QUIET_MIC)).await?;
        }
        let behaviour = super::faults::behaviour(&self.scenario.cloud);
        if !behaviour.is_default() {
            self.created.behaviour = true;
            provider.cloud.set_behaviour(&behaviour).await?;
        }
        for ra in &self.scenario.cloud.role_assignments {
            if ra.value.principal.value == podid_scenario::MIC_PRINCIPAL {
                let change = self.mic_role(ra.value.role.value)?;
                provider.cloud.change_role(&change, true).await?;
            }
        }
        self.created.faults =
            super::faults::add_all(provider.cloud.as_ref(), &self.scenario.faults, &self.inst)
                .await?;
        for (node, identities) in &self.scenario.cloud.node_identities {
            let machine = self.machine(node)?;
            for id in identities {
                let resource_id = self
                    .inst
                    .identities
                    .get(id.as_str())
                    .ok_or_else(|| StepError::UnknownIdentity(id.value.clone()))?
                    .resource_id
                    .clone();
                provider
                    .cloud
                    .assign_identity(&machine, &resource_id)
                    .await?;
                self.created
                    .assignments
                    .push((machine.clone(), resource_id));
            }
        }
        provider
            .cluster
            .ensure_namespace(&self.inst.namespace)
            .await?;
        let cluster = self.scenario.cluster.clone();
        self.apply_cluster(&cluster).await
    }

    /// The machine behind a logical node.
    pub fn machine(&self, node: &str) -> Result<Machine, StepError> {
        Ok(self
            .inst
            .node(node)
            .ok_or_else(|| StepError::UnknownNode(node.to_string()))?
            .machine
            .clone())
    }

    /// Applies a `cluster`/`apply` section: namespaces, then objects, then pods.
    pub async fn apply_cluster(
        &mut self,
        cluster: &podid_scenario::Cluster,
    ) -> Result<(), StepError> {
        let side = &self.env.provider.cluster;
        for ns in &cluster.namespaces {
            let real = self.inst.namespace_for(Some(ns.as_str()));
            side.ensure_namespace(&real).await?;
        }
        let values = objects::objects_of(cluster, &self.inst)
            .map_err(StepError::reference("the cluster objects"))?;
        for value in values {
            let key = side.objects().apply(&value).await?;
            self.created.objects.push(key);
        }
        self.create_pods(&cluster.pods).await
    }

    /// What the cloud received since `step_cursor` (this step) and since the trial began; both
    /// empty when the cloud keeps no log. A shared trial sees only the requests attributed to
    /// it.
    pub fn requests_since(
        &self,
        step_cursor: Option<u64>,
    ) -> (Vec<CloudRequest>, Vec<CloudRequest>) {
        let (Some(log), Some(first)) = (self.env.provider.cloud.request_log(), self.first_request)
        else {
            return (Vec::new(), Vec::new());
        };
        let mut trial = log.since(first);
        if self.shared {
            trial = Attribution::of(&self.inst).filter(trial);
        }
        let from = step_cursor.unwrap_or(first);
        let step = trial.iter().filter(|r| r.seq >= from).cloned().collect();
        (step, trial)
    }

    pub fn pod(&self, name: &str) -> Result<&PodHandle, StepError> {
        self.inst
            .pods
            .get(name)
            .ok_or_else(|| StepError::UnknownPod(name.to_string()))
    }

    /// Removes everything the trial created: pods, then objects in reverse order, then
    /// identity assignments; puts back identities it took off. Returns what could not be
    /// undone.
    pub async fn cleanup(&mut self) -> Vec<String> {
        let provider = &self.env.provider;
        // The cloud answers as usual again first: cleanup goes through it.
        let faults = std::mem::take(&mut self.created.faults);
        let mut problems = super::faults::remove_all(provider.cloud.as_ref(), faults).await;
        let behaviour = std::mem::take(&mut self.created.behaviour);
        if behaviour {
            if let Err(e) = provider
                .cloud
                .set_behaviour(&CloudBehaviour::default())
                .await
            {
                problems.push(crate::provider::error_chain(&e));
            }
        }
        let mic_roles = self
            .scenario
            .cloud
            .role_assignments
            .iter()
            .any(|ra| ra.value.principal.value == podid_scenario::MIC_PRINCIPAL);
        if behaviour || mic_roles {
            problems.extend(self.remove_mic_roles().await);
        }
        problems.extend(
            self.delete_all_pods()
                .await
                .iter()
                .map(StepError::report_text),
        );
        let provider = &self.env.provider;
        for key in self.created.objects.drain(..).rev() {
            if let Err(e) = provider.cluster.objects().delete(&key).await {
                problems.push(crate::provider::error_chain(&e));
            }
        }
        for (machine, id) in self.created.assignments.drain(..) {
            if let Err(e) = provider.cloud.unassign_identity(&machine, &id).await {
                problems.push(crate::provider::error_chain(&e));
            }
        }
        for (machine, id) in self.created.removals.drain(..) {
            if let Err(e) = provider.cloud.assign_identity(&machine, &id).await {
                problems.push(crate::provider::error_chain(&e));
            }
        }
        for machine in self.created.system_assigned.drain(..) {
            if let Err(e) = provider.cloud.disable_system_assigned(&machine).await {
                problems.push(crate::provider::error_chain(&e));
            }
        }
        problems
    }

    /// A control-plane role of MIC's principal, in the cloud's terms.
    fn mic_role(
        &self,
        role: podid_scenario::Role,
    ) -> Result<crate::provider::RoleChange, StepError> {
        let principal_id = self.env.provider.cloud.mic_principal_id().ok_or_else(|| {
            StepError::UnknownPrincipal(podid_scenario::MIC_PRINCIPAL.to_string())
        })?;
        Ok(crate::provider::RoleChange {
            principal_id,
            role,
            account: None,
            container: None,
        })
    }

    /// Waits until MIC has nothing left to do for earlier trials (no AzureAssignedIdentity in
    /// its namespace): a trial that makes ARM fail or changes how it answers must meet MIC's
    /// calls for its own pods only, not the clean-up of the trial before.
    async fn await_quiet_mic(&self, timeout: Duration) -> Result<(), StepError> {
        let key = objects::key_of(
            podid_scenario::ObjectKind::AzureAssignedIdentity,
            &self.inst.mic_namespace,
            "",
        );
        let store = self.env.provider.cluster.objects();
        let waited =
            podid_wait::until(Poll::every(Duration::from_millis(250), timeout), || async {
                match store.list(&key).await {
                    Ok(listed) if listed.is_empty() => Check::Done(()),
                    Ok(listed) => Check::Pending(format!(
                        "{} AzureAssignedIdentities of earlier trials left",
                        listed.len()
                    )),
                    Err(e) => Check::Failed(crate::provider::error_chain(&e)),
                }
            })
            .await;
        waited.map_err(|end| {
            StepError::from(crate::provider::ProviderError::plain(format!(
                "MIC was still busy with earlier trials after {}s: {}",
                end.waited().as_secs(),
                end.into_state()
            )))
        })
    }

    /// Takes MIC's principal's control-plane roles away again (a trial that checks ARM
    /// authorization grants them, in its cloud section or its steps): the next such trial
    /// starts from none.
    async fn remove_mic_roles(&self) -> Vec<String> {
        let cloud = &self.env.provider.cloud;
        let Some(principal_id) = cloud.mic_principal_id() else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        for role in [
            podid_scenario::Role::VirtualMachineContributor,
            podid_scenario::Role::ManagedIdentityOperator,
        ] {
            let change = crate::provider::RoleChange {
                principal_id: principal_id.clone(),
                role,
                account: None,
                container: None,
            };

            if let Err(e) = cloud.change_role(&change, false).await {
                problems.push(crate::provider::error_chain(&e));
            }
        }
        problems
    }

    /// Waits until MIC has deleted the AzureAssignedIdentities of the trial's pods (they go
    /// some time after the pods), so a trial that loaded MIC does not hand its backlog to the
    /// next; what is still there after `timeout`, if anything.
    pub async fn await_mic_cleanup(&self, timeout: Duration) -> Option<String> {
        let key = objects::key_of(
            podid_scenario::ObjectKind::AzureAssignedIdentity,
            &self.inst.mic_namespace,
            "",
        );
        let namespaces = self.inst.pod_namespaces();
        let store = self.env.provider.cluster.objects();
        let remaining = || async {
            let listed = store.list(&key).await?;
            Ok::<_, crate::provider::ProviderError>(
                listed
                    .iter()
                    .filter(|o| {
                        o["spec"]["podNamespace"]
                            .as_str()
                            .is_some_and(|ns| namespaces.iter().any(|n| n == ns))
                    })
                    .count(),
            )
        };
        let waited =
            podid_wait::until(Poll::every(Duration::from_millis(500), timeout), || async {
                match remaining().await {
                    Ok(0) => Check::Done(()),
                    Ok(n) => Check::Pending(format!("{n} left")),
                    Err(e) => Check::Failed(crate::provider::error_chain(&e)),
                }
            })
            .await;
        waited.err().map(|end| {
            format!(
                "MIC had not deleted the AzureAssignedIdentities of the trial's pods after {}s: {}",
                end.waited().as_secs(),
                end.into_state()
            )
        })
    }

    /// Saves what explains a failure: the trial's cloud requests, its API objects, the step
    /// timeline and the provider's component logs.
    pub async fn save_diagnostics(
        &self,
        since: SystemTime,
        steps: &[StepReport],
    ) -> Vec<Attachment> {
        let dir = self.env.artifacts_dir.join(format!(
            "{}-{}",
            self.scenario.name.value,
            self.inst.mode.as_str()
        ));
        let mut out = Vec::new();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!("cannot create {}: {e}", dir.display());
            return out;
        }
        let mut write = |name: &str, file: &str, text: String| {
            let path = dir.join(file);
            match std::fs::write(&path, podid_reports::redact(&text)) {
                Ok(()) => out.push(Attachment {
                    name: name.to_string(),
                    path,
                }),
                Err(e) => tracing::warn!("cannot write {}: {e}", path.display()),
            }
        };
        if let (Some(log), Some(first)) =
            (self.env.provider.cloud.request_log(), self.first_request)
        {
            let mut details = log.details_since(first);
            // A shared trial's own requests: the others' belong to their trials.
            if self.shared {
                let own: HashSet<u64> = self.requests_since(None).1.iter().map(|r| r.seq).collect();
                if let Value::Array(all) = &mut details {
                    all.retain(|r| r["seq"].as_u64().is_some_and(|seq| own.contains(&seq)));
                }
            }
            write(
                "cloud requests",
                "cloud-requests.json",
                serde_json::to_string_pretty(&details).unwrap_or_default(),
            );
        }
        let objects = self.env.provider.cluster.objects();
        let mut namespaces = vec![self.inst.namespace.clone()];
        namespaces.extend(self.inst.namespaces.values().cloned());
        // AzureAssignedIdentities live in MIC's namespace.
        if self.inst.mode == podid_scenario::NmiMode::Standard || self.inst.pods_in_mic_namespace {
            namespaces.push(self.inst.mic_namespace.clone());
        }
        let mut dump = Vec::new();
        for ns in namespaces {
            dump.push(objects.dump_namespace(&ns).await);
        }
        write(
            "API objects",
            "objects.json",
            serde_json::to_string_pretty(&dump).unwrap_or_default(),
        );
        write("step timeline", "steps.txt", timeline(steps));
        for saved in self
            .env
            .provider
            .cluster
            .save_diagnostics(since, &dir)
            .await
        {
            out.push(Attachment {
                name: saved.name,
                path: saved.path,
            });
        }
        out
    }
}

/// One line per step with its outcome and time, and its output indented below.
fn timeline(steps: &[StepReport]) -> String {
    let mut text = String::new();
    for s in steps {
        text.push_str(&format!(
            "{:>2} {:<8} {:<60} {:?} {}ms\n",
            s.index,
            s.kind,
            s.name,
            s.status,
            s.duration.as_millis()
        ));
        for line in s.output.iter().flat_map(|o| o.lines()) {
            text.push_str("      ");
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}
