//! A trial's pods: created and deleted several at once (a pod group of 40 one after another
//! would take most of a trial), a group (`replicas: N`) standing for its members.

use futures::StreamExt;
use podid_scenario::{MIC_NAMESPACE, Named, PodDecl, Template};

use super::error::StepError;
use super::scenario_run::ScenarioRun;
use crate::provider::{PodHandle, PodRequest};

/// How many pods are created or deleted at once.
const AT_ONCE: usize = 16;

impl ScenarioRun<'_> {
    /// What the provider must create for one declaration, by declared name: the pod, or each
    /// group member. Pods in MIC's namespace, which every trial shares, get the trial's suffix
    /// so that trials do not collide there (NMI's MIC short cut reads the namespace and the
    /// owner, never the pod's name).
    fn pod_requests(
        &self,
        name: &str,
        pod: &PodDecl,
    ) -> Result<Vec<(String, PodRequest)>, StepError> {
        let render = |t: &Template| {
            podid_scenario::reference::render(t, &self.inst)
                .map_err(StepError::reference(format!("pod `{name}`")))
        };
        let mut labels = Vec::new();
        for (k, v) in &pod.labels {
            let value = render(v)?;
            let value = match k.as_str() {
                crate::objects::BINDING_LABEL => self.inst.selector(&value),
                _ => value,
            };
            labels.push((k.clone(), value));
        }
        let mut annotations = Vec::new();
        for (k, v) in &pod.annotations {
            annotations.push((k.clone(), render(v)?));
        }
        let owner = match &pod.owner {
            Some(o) => Some((o.kind.value, render(&o.name)?)),
            None => None,
        };
        let ip_of = match &pod.ip_of {
            None => None,
            Some(other) => Some(
                self.inst
                    .pods
                    .get(other.as_str())
                    .map(|h| h.ip)
                    .ok_or_else(|| StepError::UnknownPod(other.value.clone()))?,
            ),
        };
        let in_mic_namespace = pod
            .namespace
            .as_ref()
            .is_some_and(|n| n.value == MIC_NAMESPACE);
        let namespace = self
            .inst
            .namespace_for(pod.namespace.as_ref().map(|n| n.as_str()));
        Ok(pod
            .member_names(name)
            .into_iter()
            .map(|member| {
                let real = match in_mic_namespace {
                    true => format!("{member}-{}", self.inst.suffix),
                    false => member.clone(),
                };
                (
                    member,
                    PodRequest {
                        ip_of,
                        ..self.pod_request(real, &namespace, pod, &labels, &annotations, &owner)
                    },
                )
            })
            .collect())
    }

    fn pod_request(
        &self,
        name: String,
        namespace: &str,
        pod: &PodDecl,
        labels: &[(String, String)],
        annotations: &[(String, String)],
        owner: &Option<(podid_scenario::OwnerKind, String)>,
    ) -> PodRequest {
        PodRequest {
            namespace: namespace.to_string(),
            name,
            node: pod.node.value.clone(),
            labels: labels.to_vec(),
            annotations: annotations.to_vec(),
            owner: owner.clone(),
            phase: pod.phase.as_ref().map(|p| p.value).unwrap_or_default(),
            storage_accounts: self.inst.accounts.values().cloned().collect(),
            ip_of: None,
        }
    }

    /// Creates a section's pods, several at once; pods that report another pod's address
    /// (`ipOf`) once that pod exists. Every pod that was created is recorded (for cleanup) even
    /// when another failed; the first failure is returned.
    pub(super) async fn create_pods(&mut self, pods: &Named<PodDecl>) -> Result<(), StepError> {
        let (records, running): (Vec<_>, Vec<_>) =
            pods.iter().partition(|(_, pod)| pod.ip_of.is_some());
        self.create_pod_batch(&running).await?;
        self.create_pod_batch(&records).await
    }

    async fn create_pod_batch(
        &mut self,
        pods: &[(&podid_scenario::Name, &PodDecl)],
    ) -> Result<(), StepError> {
        if pods.is_empty() {
            return Ok(());
        }
        let mut requests = Vec::new();
        for &(name, pod) in pods {
            requests.extend(self.pod_requests(name, pod)?);
            if pod.replicas.is_some() {
                self.inst
                    .pod_groups
                    .insert(name.value.clone(), pod.member_names(name));
            }
        }
        if pods.iter().any(|(_, p)| {
            p.namespace
                .as_ref()
                .is_some_and(|n| n.value == MIC_NAMESPACE)
        }) {
            self.inst.pods_in_mic_namespace = true;
            let side = &self.env.provider.cluster;
            side.ensure_namespace(&self.inst.mic_namespace).await?;
        }
        let side = &self.env.provider.cluster;
        // Owned items and plain futures: closures over borrowed items make the trial's future
        // lose `Send` for the spawned tasks that run it.
        let creations = requests.into_iter().map(|(declared, r)| async move {
            let result = side.create_pod(&r).await;
            (declared, result)
        });
        let created: Vec<(String, Result<PodHandle, _>)> = futures::stream::iter(creations)
            .buffered(AT_ONCE)
            .collect()
            .await;
        let mut first_error = None;
        for (name, result) in created {
            match result {
                Ok(handle) => {
                    self.inst.pods.insert(name, handle);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Deletes a pod, or every member of a group, the trial created; `false` when it has no
    /// such pod.
    pub async fn delete_pod(&mut self, name: &str) -> Result<bool, StepError> {
        let names = match self.inst.pod_groups.remove(name) {
            Some(members) => members,
            None => vec![name.to_string()],
        };
        let handles: Vec<PodHandle> = names
            .iter()
            .filter_map(|n| self.inst.pods.remove(n))
            .collect();
        if handles.is_empty() {
            return Ok(false);
        }
        let errors = self.delete_handles(handles).await;
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }

    /// Deletes every pod the trial still has; what could not be deleted.
    pub(super) async fn delete_all_pods(&mut self) -> Vec<StepError> {
        self.inst.pod_groups.clear();
        let handles: Vec<PodHandle> = self.inst.pods.drain().map(|(_, h)| h).collect();
        self.delete_handles(handles).await
    }

    async fn delete_handles(&self, handles: Vec<PodHandle>) -> Vec<StepError> {
        let side = &self.env.provider.cluster;
        let deletions = handles
            .into_iter()
            .map(|h| async move { side.delete_pod(&h).await });
        let results: Vec<Result<(), _>> = futures::stream::iter(deletions)
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        results
            .into_iter()
            .filter_map(|r| r.err().map(StepError::from))
            .collect()
    }
}
