//! Runs scenarios against a provider: sets up what a scenario declares, performs its steps,
//! checks expectations, saves diagnostics on failure and removes what it created.

mod gate;
mod steps;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kube::core::GroupVersionKind;
use podid_reports::{Attachment, Failure, Outcome, ScenarioReport, StepReport};
use podid_scenario::{NmiMode, Scenario, ScenarioFile};

pub use gate::NmiGate;

use crate::instance::ScenarioInstance;
use crate::objects;
use crate::provider::{PodHandle, PodRequest, Provider};

/// One scenario in one NMI mode: the unit that passes or fails.
#[derive(Debug, Clone)]
pub struct Trial {
    pub file: Arc<ScenarioFile>,
    pub mode: NmiMode,
}

impl Trial {
    /// `<provider>::<mode>::<scenario>`, the name filters match against.
    pub fn name(&self, provider: &str) -> String {
        format!(
            "{provider}::{}::{}",
            self.mode.as_str(),
            self.file.scenario.name.value
        )
    }

    pub fn scenario(&self) -> &Scenario {
        &self.file.scenario
    }
}

/// Every scenario × mode of a set of files, in file order.
pub fn trials(files: &[ScenarioFile]) -> Vec<Trial> {
    files
        .iter()
        .flat_map(|f| {
            let file = Arc::new(f.clone());
            f.scenario.modes.iter().map(move |m| Trial {
                file: file.clone(),
                mode: m.value,
            })
        })
        .collect()
}

/// A provider plus what the runner keeps across scenarios.
pub struct Environment<P: Provider> {
    pub provider: P,
    pub run_id: String,
    /// Where failure diagnostics go (`target/podid/runs/<run>/`).
    pub artifacts_dir: PathBuf,
    pub gate: NmiGate,
    /// API resources by kind, discovered once.
    pub kinds: objects::Kinds,
    /// Default deadline of one token/blob step (probe included).
    pub step_timeout: Duration,
}

impl<P: Provider> Environment<P> {
    pub fn new(provider: P, run_id: String, artifacts_dir: PathBuf) -> Self {
        Self {
            provider,
            run_id,
            artifacts_dir,
            gate: NmiGate::default(),
            kinds: objects::Kinds::default(),
            step_timeout: Duration::from_secs(150),
        }
    }
}

/// What a scenario created, so cleanup can remove it whatever happened.
#[derive(Default)]
struct Created {
    /// Kind, namespace (for namespaced kinds) and name, in creation order.
    objects: Vec<(GroupVersionKind, Option<String>, String)>,
    assignments: Vec<(podid_mocks::MachineRef, String)>,
}

/// The run state of one scenario, shared by its steps.
pub(crate) struct ScenarioRun<'a, P: Provider> {
    pub env: &'a Environment<P>,
    pub scenario: &'a Scenario,
    pub inst: ScenarioInstance,
    /// The mock cloud's first request sequence number of this trial.
    pub first_seq: u64,
    created: Created,
}

impl<P: Provider> ScenarioRun<'_, P> {
    /// Applies a `cluster`/`apply` section: objects first, then pods.
    pub(crate) async fn apply_cluster(
        &mut self,
        cluster: &podid_scenario::Cluster,
    ) -> Result<(), String> {
        let client = self.env.provider.client();
        for ns in &cluster.namespaces {
            let real = self.inst.namespace_for(Some(ns.as_str()));
            self.env
                .provider
                .ensure_namespace(&real)
                .await
                .map_err(|e| e.to_string())?;
        }
        let values = objects::objects_of(cluster, &self.inst).map_err(|e| e.to_string())?;
        for value in values {
            objects::apply(&self.env.kinds, &client, &value).await?;
            self.created.objects.push(objects::identity_of(&value)?);
        }
        for (name, pod) in &cluster.pods {
            let render = |t: &podid_scenario::Template| {
                podid_scenario::reference::render(t, &self.inst).map_err(|e| e.to_string())
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
                owner_replica_set: pod.replica_set.as_ref().map(render).transpose()?,
                storage_accounts: self.inst.accounts.values().cloned().collect(),
            };
            let handle = self
                .env
                .provider
                .create_pod(&request)
                .await
                .map_err(|e| e.to_string())?;
            self.inst.pods.insert(name.value.clone(), handle);
        }
        Ok(())
    }

    /// What the mock cloud received since `step_seq` (this step) and since the trial began.
    pub(crate) fn requests_since(
        &self,
        step_seq: u64,
    ) -> (
        Vec<podid_mocks::RecordedRequest>,
        Vec<podid_mocks::RecordedRequest>,
    ) {
        let trial: Vec<_> = self
            .env
            .provider
            .cloud()
            .requests()
            .into_iter()
            .filter(|r| r.seq >= self.first_seq)
            .collect();
        let step = trial
            .iter()
            .filter(|r| r.seq >= step_seq)
            .cloned()
            .collect();
        (step, trial)
    }

    pub(crate) async fn delete_pod(&mut self, name: &str) -> Result<bool, String> {
        match self.inst.pods.remove(name) {
            Some(handle) => self
                .env
                .provider
                .delete_pod(&handle)
                .await
                .map(|_| true)
                .map_err(|e| e.to_string()),
            None => Ok(false),
        }
    }

    async fn setup(&mut self) -> Result<(), String> {
        let cloud = self.env.provider.cloud();
        let spec = self.inst.cloud_spec(self.scenario)?;
        cloud
            .apply(&spec)
            .map_err(|e| format!("adding the scenario's objects to the mock cloud: {e}"))?;
        for (node, identities) in &self.scenario.cloud.node_identities {
            let info = self
                .inst
                .node(node)
                .ok_or_else(|| format!("the provider has no node `{node}`"))?
                .clone();
            for id in identities {
                let resource_id = self.inst.identities[id.as_str()].resource_id.clone();
                cloud
                    .assign_identity(&info.machine, &resource_id)
                    .map_err(|e| format!("assigning identity `{id}` to {node}: {e}"))?;
                self.created
                    .assignments
                    .push((info.machine.clone(), resource_id));
            }
        }
        let unsupported = self
            .scenario
            .cluster
            .azure_identities
            .values()
            .any(|ai| ai.service_principal.is_some());
        if unsupported {
            return Err("AzureIdentities of service principals (types 1 and 2) are not supported by this provider yet: NMI would need the mock AAD inside each node namespace".into());
        }
        self.env
            .provider
            .ensure_namespace(&self.inst.namespace.clone())
            .await
            .map_err(|e| e.to_string())?;
        let cluster = self.scenario.cluster.clone();
        self.apply_cluster(&cluster).await
    }

    async fn cleanup(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let pods: Vec<String> = self.inst.pods.keys().cloned().collect();
        for pod in pods {
            if let Err(e) = self.delete_pod(&pod).await {
                problems.push(e);
            }
        }
        let client = self.env.provider.client();
        for (gvk, ns, name) in self.created.objects.drain(..).rev() {
            if let Err(e) =
                objects::delete_object(&self.env.kinds, &client, &gvk, ns.as_deref(), &name).await
            {
                problems.push(e);
            }
        }
        let cloud = self.env.provider.cloud();
        for (machine, id) in self.created.assignments.drain(..) {
            if let Err(e) = cloud.unassign_identity(&machine, &id) {
                problems.push(format!("unassigning {id}: {e}"));
            }
        }
        problems
    }

    async fn save_diagnostics(&self, since: SystemTime, steps: &[StepReport]) -> Vec<Attachment> {
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
        let (_, requests) = self.requests_since(self.first_seq);
        write(
            "mock requests",
            "mock-requests.json",
            serde_json::to_string_pretty(&requests).unwrap_or_default(),
        );
        let client = self.env.provider.client();
        let mut namespaces = vec![self.inst.namespace.clone()];
        namespaces.extend(self.inst.namespaces.values().cloned());
        let mut dump = Vec::new();
        for ns in namespaces {
            dump.push(objects::dump_namespace(&self.env.kinds, &client, &ns).await);
        }
        write(
            "API objects",
            "objects.json",
            serde_json::to_string_pretty(&dump).unwrap_or_default(),
        );
        let mut timeline = String::new();
        for s in steps {
            timeline.push_str(&format!(
                "{:>2} {:<8} {:<60} {:?} {}ms\n",
                s.index,
                s.kind,
                s.name,
                s.status,
                s.duration.as_millis()
            ));
            if let Some(o) = &s.output {
                for line in o.lines() {
                    timeline.push_str("      ");
                    timeline.push_str(line);
                    timeline.push('\n');
                }
            }
        }
        write("step timeline", "steps.txt", timeline);
        for saved in self.env.provider.save_diagnostics(since, &dir).await {
            out.push(Attachment {
                name: saved.name,
                path: saved.path,
            });
        }
        out
    }
}

/// Runs one trial to completion; never panics on a scenario's behalf, never leaves its objects.
pub async fn run_trial<P: Provider>(env: &Environment<P>, trial: &Trial) -> ScenarioReport {
    let scenario = trial.scenario();
    let started = Instant::now();
    let wall = SystemTime::now();
    let cloud = env.provider.cloud();
    let first_seq = cloud.next_seq();
    let mut report = ScenarioReport {
        name: scenario.name.value.clone(),
        file: trial.file.path.display().to_string(),
        mode: trial.mode.as_str().to_string(),
        tags: scenario.tags.iter().map(|t| t.value.clone()).collect(),
        status: Outcome::Passed,
        duration: Duration::ZERO,
        steps: Vec::new(),
        attachments: Vec::new(),
        skip_reason: None,
    };
    let flags: Vec<String> = scenario.nmi.flags.iter().map(|f| f.value.clone()).collect();
    let mic_flags: Vec<String> = scenario.mic.flags.iter().map(|f| f.value.clone()).collect();
    // Request counts are only meaningful while no other scenario talks to the mock cloud.
    let exclusive = scenario.steps.iter().any(|s| {
        let step = &s.value;
        step.expect.as_ref().is_some_and(|e| !e.requests.is_empty())
            || step.wait.as_ref().is_some_and(|w| !w.requests.is_empty())
    });
    let _guard = match env
        .gate
        .enter(&env.provider, trial.mode, &flags, &mic_flags, exclusive)
        .await
    {
        Ok(g) => g,
        Err(e) => {
            report.status = Outcome::Errored;
            report
                .steps
                .push(setup_failure(format!("configuring NMI: {e}")));
            report.duration = started.elapsed();
            return report;
        }
    };
    let inst = ScenarioInstance::new(
        scenario,
        trial.mode,
        &env.run_id,
        &cloud.tenant_id(),
        &cloud.subscription_id(),
        env.provider.nodes(),
        |account| env.provider.storage_account_url(account),
    );
    let mut run = ScenarioRun {
        env,
        scenario,
        inst,
        first_seq,
        created: Created::default(),
    };
    let setup_started = Instant::now();
    match run.setup().await {
        Err(e) => {
            report.status = Outcome::Errored;
            let mut step = setup_failure(e);
            step.duration = setup_started.elapsed();
            report.steps.push(step);
        }
        Ok(()) => {
            let mut failed = false;
            for (i, step) in scenario.steps.iter().enumerate() {
                if failed {
                    report.steps.push(StepReport {
                        index: i + 1,
                        name: steps::step_name(&step.value),
                        kind: step
                            .value
                            .action()
                            .map(|a| a.keyword())
                            .unwrap_or("?")
                            .into(),
                        status: Outcome::Skipped,
                        duration: Duration::ZERO,
                        failures: Vec::new(),
                        output: Some("not run: an earlier step failed".into()),
                    });
                    continue;
                }
                let step_report = steps::run_step(&mut run, i + 1, &step.value).await;
                if step_report.status != Outcome::Passed {
                    failed = true;
                    report.status = step_report.status;
                }
                report.steps.push(step_report);
            }
        }
    }
    if report.status != Outcome::Passed {
        report.attachments = run.save_diagnostics(wall, &report.steps).await;
    }
    let cleanup_problems = run.cleanup().await;
    if !cleanup_problems.is_empty() {
        if report.status == Outcome::Passed {
            report.status = Outcome::Errored;
        }
        report.steps.push(StepReport {
            index: report.steps.len() + 1,
            name: "cleanup".into(),
            kind: "cleanup".into(),
            status: Outcome::Errored,
            duration: Duration::ZERO,
            failures: cleanup_problems
                .into_iter()
                .map(|p| Failure {
                    expectation: "cleanup".into(),
                    expected: "every object removed".into(),
                    actual: p.clone(),
                    message: p,
                })
                .collect(),
            output: None,
        });
    }
    report.duration = started.elapsed();
    report
}

fn setup_failure(message: String) -> StepReport {
    StepReport {
        index: 0,
        name: "set up the scenario".into(),
        kind: "setup".into(),
        status: Outcome::Errored,
        duration: Duration::ZERO,
        failures: vec![Failure {
            expectation: "setup".into(),
            expected: "the scenario's cloud and cluster objects in place".into(),
            actual: message.clone(),
            message,
        }],
        output: None,
    }
}

/// Pods keyed by declared name, for steps.
pub(crate) fn pod<'a, P: Provider>(
    run: &'a ScenarioRun<'_, P>,
    name: &str,
) -> Result<&'a PodHandle, String> {
    run.inst.pods.get(name).ok_or_else(|| {
        format!("pod `{name}` does not exist (not created yet, or deleted by an earlier step)")
    })
}
