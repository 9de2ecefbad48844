//! What the local provider does to NMI, MIC and kube-apiserver themselves: configuring them for
//! a trial, a scenario's stop/kill/start/restart, bringing back what a trial left down, and
//! reading their `/healthz`.

use podid_local::{HealthReading, LocalCluster, MicConfig, MicSelector, StopSignal};
use podid_scenario::{Component, LifecycleAction, MicReplica, NmiMode};

use super::{LocalClusterSide, err, stop_checks};
use crate::provider::cluster::{ComponentRef, ConfigureReport, HealthAnswer, IdentityConfig};
use crate::provider::error::ProviderError;

impl LocalClusterSide {
    /// MIC's configuration for `config`: in standard mode only (in managed mode MIC would
    /// assign identities that scenarios expect to be absent).
    fn mic_for(&self, config: &IdentityConfig) -> Option<MicConfig> {
        (config.mode == NmiMode::Standard).then(|| MicConfig {
            replicas: config.mic_replicas.max(1),
            extra_args: config.mic_flags.clone(),
            ..self.mic.clone()
        })
    }

    /// MIC as `config` wants it (kept when already so), then NMI restarted on every node.
    pub(super) async fn apply_config(
        &self,
        config: &IdentityConfig,
    ) -> Result<ConfigureReport, ProviderError> {
        let cluster = self.cluster()?;
        match self.mic_for(config) {
            Some(mic) => cluster
                .run_mic(&mic)
                .await
                .map_err(|e| err("starting MIC".into(), e))?,
            None => cluster
                .stop_mic()
                .await
                .map_err(|e| err("stopping MIC".into(), e))?,
        }
        let action = format!("starting NMI in {} mode", config.mode.as_str());
        let stops = cluster
            .restart_nmi(nmi_mode(config.mode), &config.nmi_flags)
            .await
            .map_err(|e| err(action, e))?;
        Ok(ConfigureReport {
            nmi_stops: stop_checks(stops),
        })
    }

    /// Starts what a trial left down: kube-apiserver first (the others need it), then NMI on
    /// each node where it is down, then MIC's missing replicas. When the components do not run
    /// as `config` says (`configured` differs), they are configured afresh instead.
    pub(super) async fn recover_components(
        &self,
        config: &IdentityConfig,
        configured: Option<&IdentityConfig>,
    ) -> Result<ConfigureReport, ProviderError> {
        let cluster = self.cluster()?;
        cluster
            .start_apiserver()
            .await
            .map_err(|e| err("starting kube-apiserver again".into(), e))?;
        if configured != Some(config) {
            return self.apply_config(config).await;
        }
        let down = cluster.nmi_down_nodes().await;
        cluster
            .start_nmi_on(&down)
            .await
            .map_err(|e| err(format!("starting NMI again on {}", down.join(", ")), e))?;
        if let Some(mic) = self.mic_for(config) {
            cluster
                .run_mic(&mic)
                .await
                .map_err(|e| err("starting MIC's replicas again".into(), e))?;
        }
        Ok(ConfigureReport::default())
    }

    /// A scenario's `stop`, `kill`, `start` or `restart` of one component.
    pub(super) async fn change_component(
        &self,
        action: LifecycleAction,
        target: &ComponentRef,
    ) -> Result<(), ProviderError> {
        let cluster = self.cluster()?;
        let what = format!("{} {}", action.keyword(), describe(target));
        let result = match target.component {
            Component::Nmi => self.change_nmi(&cluster, action, target).await,
            Component::Mic => change_mic(&cluster, action, target.replica).await,
            Component::Apiserver => change_apiserver(&cluster, action).await,
        };
        result.map_err(|e| err(what, e))
    }

    async fn change_nmi(
        &self,
        cluster: &LocalCluster,
        action: LifecycleAction,
        target: &ComponentRef,
    ) -> Result<(), podid_local::LocalError> {
        let nodes = self.nmi_nodes(target);
        match action {
            LifecycleAction::Stop => cluster
                .stop_nmi_on(&nodes, StopSignal::Term)
                .await
                .map(drop),
            LifecycleAction::Kill => cluster
                .stop_nmi_on(&nodes, StopSignal::Kill)
                .await
                .map(drop),
            LifecycleAction::Start => cluster.start_nmi_on(&nodes).await.map(drop),
            LifecycleAction::Restart => {
                cluster.stop_nmi_on(&nodes, StopSignal::Term).await?;
                cluster.start_nmi_on(&nodes).await.map(drop)
            }
        }
    }

    /// The nodes an NMI target addresses: one, or every node.
    fn nmi_nodes(&self, target: &ComponentRef) -> Vec<String> {
        match &target.node {
            Some(node) => vec![node.clone()],
            None => self.nodes.iter().map(|n| n.name.clone()).collect(),
        }
    }

    /// Each addressed instance's `/healthz`; one that does not answer is reported with status 0
    /// and the reason, so a step can wait for it.
    pub(super) async fn read_health(
        &self,
        target: &ComponentRef,
    ) -> Result<Vec<HealthAnswer>, ProviderError> {
        let cluster = self.cluster()?;
        let what = format!("reading the health of {}", describe(target));
        let readings = match target.component {
            Component::Nmi => {
                let mut readings = Vec::new();
                for node in self.nmi_nodes(target) {
                    readings.push(
                        cluster
                            .nmi_health(&node)
                            .await
                            .map_err(|e| err(what.clone(), e))?,
                    );
                }
                readings
            }
            Component::Mic => {
                if cluster.mic_config().await.is_none() {
                    return Err(ProviderError::plain(format!(
                        "{what}: MIC does not run (it runs in standard mode only)"
                    )));
                }
                cluster
                    .mic_health(mic_selector(target.replica))
                    .await
                    .map_err(|e| err(what, e))?
            }
            Component::Apiserver => vec![cluster.apiserver_health().await],
        };
        Ok(readings.into_iter().map(answer).collect())
    }
}

async fn change_mic(
    cluster: &LocalCluster,
    action: LifecycleAction,
    replica: Option<MicReplica>,
) -> Result<(), podid_local::LocalError> {
    if cluster.mic_config().await.is_none() {
        return Err(podid_local::LocalError::Config(
            "MIC does not run (it runs in standard mode only)".into(),
        ));
    }
    let which = mic_selector(replica);
    match action {
        LifecycleAction::Stop => cluster
            .stop_mic_replicas(which, StopSignal::Term)
            .await
            .map(drop),
        LifecycleAction::Kill => cluster
            .stop_mic_replicas(which, StopSignal::Kill)
            .await
            .map(drop),
        LifecycleAction::Start => cluster.start_mic_replicas(which).await.map(drop),
        LifecycleAction::Restart => {
            // The very replicas stopped come back, whoever leads by then.
            let stopped = cluster.stop_mic_replicas(which, StopSignal::Term).await?;
            cluster.start_mic_replica_slots(&stopped).await
        }
    }
}

async fn change_apiserver(
    cluster: &LocalCluster,
    action: LifecycleAction,
) -> Result<(), podid_local::LocalError> {
    match action {
        LifecycleAction::Stop => cluster.stop_apiserver(StopSignal::Term).await,
        LifecycleAction::Kill => cluster.stop_apiserver(StopSignal::Kill).await,
        LifecycleAction::Start => cluster.start_apiserver().await,
        LifecycleAction::Restart => {
            cluster.stop_apiserver(StopSignal::Term).await?;
            cluster.start_apiserver().await
        }
    }
}

fn mic_selector(replica: Option<MicReplica>) -> MicSelector {
    match replica {
        None => MicSelector::All,
        Some(MicReplica::Leader) => MicSelector::Leader,
        Some(MicReplica::Follower) => MicSelector::Followers,
    }
}

fn nmi_mode(mode: NmiMode) -> podid_local::NmiMode {
    match mode {
        NmiMode::Managed => podid_local::NmiMode::Managed,
        NmiMode::Standard => podid_local::NmiMode::Standard,
    }
}

/// A reading as the runner sees it: no answer is status 0 with the reason as body.
fn answer(reading: HealthReading) -> HealthAnswer {
    match reading.answer {
        Ok((status, body)) => HealthAnswer {
            instance: reading.instance,
            status,
            body,
        },
        Err(reason) => HealthAnswer {
            instance: reading.instance,
            status: 0,
            body: reason,
        },
    }
}

/// The target in words, for errors (`NMI on node-0`, `the MIC leader`).
fn describe(target: &ComponentRef) -> String {
    match (target.component, &target.node, target.replica) {
        (Component::Nmi, Some(node), _) => format!("NMI on {node}"),
        (Component::Nmi, None, _) => "NMI on every node".into(),
        (Component::Mic, _, Some(MicReplica::Leader)) => "the MIC leader".into(),
        (Component::Mic, _, Some(MicReplica::Follower)) => "the MIC follower".into(),
        (Component::Mic, _, None) => "every MIC replica".into(),
        (Component::Apiserver, _, _) => "kube-apiserver".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(component: Component) -> ComponentRef {
        ComponentRef {
            component,
            node: None,
            replica: None,
        }
    }

    #[test]
    fn targets_are_named_for_errors() {
        assert_eq!(describe(&target(Component::Nmi)), "NMI on every node");
        assert_eq!(
            describe(&ComponentRef {
                node: Some("node-1".into()),
                ..target(Component::Nmi)
            }),
            "NMI on node-1"
        );
        assert_eq!(
            describe(&ComponentRef {
                replica: Some(MicReplica::Follower),
                ..target(Component::Mic)
            }),
            "the MIC follower"
        );
        assert_eq!(describe(&target(Component::Apiserver)), "kube-apiserver");
    }

    #[test]
    fn an_instance_that_does_not_answer_reads_as_status_0() {
        let a = answer(HealthReading {
            instance: "nmi@node-0".into(),
            answer: Err("NMI is not running".into()),
        });
        assert_eq!((a.status, a.body.as_str()), (0, "NMI is not running"));
        let b = answer(HealthReading {
            instance: "mic#1 (follower)".into(),
            answer: Ok((200, "Not Active".into())),
        });
        assert_eq!((b.status, b.body.as_str()), (200, "Not Active"));
    }

    #[test]
    fn replicas_map_to_selectors() {
        assert_eq!(mic_selector(None), MicSelector::All);
        assert_eq!(mic_selector(Some(MicReplica::Leader)), MicSelector::Leader);
        assert_eq!(
            mic_selector(Some(MicReplica::Follower)),
            MicSelector::Followers
        );
    }
}
