//! The state one trial's steps share: the scenario instance, what it created (for cleanup), its
//! window on the cloud's request log, and the saving of failure diagnostics.

use std::time::SystemTime;

use podid_reports::{Attachment, StepReport};
use podid_scenario::Scenario;
use serde_json::Value;

use super::Environment;
use super::error::StepError;
use crate::instance::ScenarioInstance;
use crate::objects;
use crate::provider::{CloudRequest, Machine, ObjectKey, PodHandle, PodRequest};

/// What a trial created, so cleanup can remove it whatever happened.
#[derive(Default)]
struct Created {
    /// In creation order; removed in reverse.
    objects: Vec<ObjectKey>,
    assignments: Vec<(Machine, String)>,
}

/// The run state of one trial, shared by its steps.
pub(crate) struct ScenarioRun<'a> {
    pub env: &'a Environment,
    pub scenario: &'a Scenario,
    pub inst: ScenarioInstance,
    /// The request log's cursor when the trial began (after it was let through the gate).
    pub first_request: Option<u64>,
    /// The JWKS that verifies the cloud's tokens, read once per trial.
    pub signing_keys: Option<Value>,
    created: Created,
}

impl<'a> ScenarioRun<'a> {
    pub fn new(env: &'a Environment, scenario: &'a Scenario, inst: ScenarioInstance) -> Self {
        Self {
            env,
            scenario,
            inst,
            first_request: env.provider.request_cursor(),
            signing_keys: None,
            created: Created::default(),
        }
    }

    /// Declares the cloud, assigns node identities, creates the namespace, objects and pods.
    pub async fn setup(&mut self) -> Result<(), StepError> {
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
        for (node, identities) in &self.scenario.cloud.node_identities {
            let machine = self
                .inst
                .node(node)
                .ok_or_else(|| StepError::UnknownNode(node.value.clone()))?
                .machine
                .clone();
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
        for (name, pod) in &cluster.pods {
            let render = |t: &podid_scenario::Template| {
                podid_scenario::reference::render(t, &self.inst)
                    .map_err(StepError::reference(format!("pod `{}`", name.value)))
            };
            let mut labels = Vec::new();
            for (k, v) in &pod.labels {
                labels.push((k.clone(), render(v)?));
            }
            let mut annotations = Vec::new();
            for (k, v) in &pod.annotations {
                annotations.push((k.clone(), render(v)?));
            }
            let request = PodRequest {
                namespace: self
                    .inst
                    .namespace_for(pod.namespace.as_ref().map(|n| n.as_str())),
                name: name.value.clone(),
                node: pod.node.value.clone(),
                labels,
                annotations,
                owner: match &pod.owner {
                    Some(o) => Some((o.kind.value, render(&o.name)?)),
                    None => None,
                },
                phase: pod.phase.as_ref().map(|p| p.value).unwrap_or_default(),
                storage_accounts: self.inst.accounts.values().cloned().collect(),
            };
            let handle = side.create_pod(&request).await?;
            self.inst.pods.insert(name.value.clone(), handle);
        }
        Ok(())
    }

    /// What the cloud received since `step_cursor` (this step) and since the trial began; both
    /// empty when the cloud keeps no log.
    pub fn requests_since(
        &self,
        step_cursor: Option<u64>,
    ) -> (Vec<CloudRequest>, Vec<CloudRequest>) {
        let (Some(log), Some(first)) = (self.env.provider.cloud.request_log(), self.first_request)
        else {
            return (Vec::new(), Vec::new());
        };
        let trial = log.since(first);
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

    /// Deletes a pod the trial created; `false` when it has no such pod.
    pub async fn delete_pod(&mut self, name: &str) -> Result<bool, StepError> {
        match self.inst.pods.remove(name) {
            Some(handle) => {
                self.env.provider.cluster.delete_pod(&handle).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Removes everything the trial created: pods, then objects in reverse order, then
    /// identity assignments. Returns what could not be removed.
    pub async fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let pods: Vec<String> = self.inst.pods.keys().cloned().collect();
        for pod in pods {
            if let Err(e) = self.delete_pod(&pod).await {
                problems.push(e.report_text());
            }
        }
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
        problems
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
            write(
                "cloud requests",
                "cloud-requests.json",
                serde_json::to_string_pretty(&log.details_since(first)).unwrap_or_default(),
            );
        }
        let objects = self.env.provider.cluster.objects();
        let mut namespaces = vec![self.inst.namespace.clone()];
        namespaces.extend(self.inst.namespaces.values().cloned());
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
