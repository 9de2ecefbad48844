//! Knowing when NMI's and MIC's informers are watching: the API server counts the watches it
//! serves per resource (`apiserver_longrunning_requests`). Both report healthy once their caches
//! are filled, but their watches may still be opening; an object created in that gap reaches
//! them late, and in managed mode NMI does not retry, so a bound pod would be denied.
//!
//! NMI and MIC watch some of the same resources, so a component's own watches are the count
//! minus the other components' (which this cluster knows, since it runs them all).

use std::time::Duration;

use podid_wait::{Check, Poll, until};

use crate::LocalError;
use crate::config::NmiMode;

/// API group of the aad-pod-identity resources.
pub const GROUP: &str = "aadpodidentity.k8s.io";
const POLL: Duration = Duration::from_millis(50);

/// What NMI v1.8.17 watches in each mode (`crd.NewCRDClientLite`): assigned identities in
/// standard mode, identities and bindings in managed mode, exceptions in both.
pub fn nmi_watches(mode: NmiMode) -> &'static [&'static str] {
    match mode {
        NmiMode::Standard => &["azureassignedidentities", "azurepodidentityexceptions"],
        NmiMode::Managed => &[
            "azureidentities",
            "azureidentitybindings",
            "azurepodidentityexceptions",
        ],
    }
}

/// What MIC v1.8.17 watches (`crd.NewCRDClient`, started once it leads).
pub const MIC_WATCHES: &[&str] = &[
    "azureidentitybindings",
    "azureidentities",
    "azureassignedidentities",
];

/// The components that watch aad-pod-identity resources besides the ones being started or
/// stopped (NMI runs per node, so one NMI can restart while the others keep watching).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchers {
    /// NMI's mode, when it is configured.
    pub nmi: Option<NmiMode>,
    /// How many NMIs run in that mode.
    pub nmis: u64,
    /// Whether a MIC leader runs (followers watch nothing until they lead).
    pub mic: bool,
}

impl Watchers {
    /// NMI's watches of `resource`.
    fn nmi_count(&self, resource: &str) -> u64 {
        match self.nmi {
            Some(mode) if nmi_watches(mode).contains(&resource) => self.nmis,
            _ => 0,
        }
    }

    /// MIC's watches of `resource`.
    fn mic_count(&self, resource: &str) -> u64 {
        u64::from(self.mic && MIC_WATCHES.contains(&resource))
    }

    /// What `own` NMIs in `mode` add to everyone else's watches.
    pub fn nmi_targets(&self, mode: NmiMode, own: u64) -> Vec<WatchTarget> {
        nmi_watches(mode)
            .iter()
            .map(|resource| WatchTarget {
                resource,
                others: self.mic_count(resource) + self.nmi_count(resource),
                own,
            })
            .collect()
    }

    /// What a MIC leader adds to everyone else's watches.
    pub fn mic_targets(&self) -> Vec<WatchTarget> {
        MIC_WATCHES
            .iter()
            .map(|resource| WatchTarget {
                resource,
                others: self.nmi_count(resource) + self.mic_count(resource),
                own: 1,
            })
            .collect()
    }

    /// Every watch these components hold, as if all were starting at once (after the API
    /// server restarted, every watch is new).
    pub fn all_targets(&self) -> Vec<WatchTarget> {
        let mut resources: Vec<&'static str> = MIC_WATCHES.to_vec();
        for mode in [NmiMode::Standard, NmiMode::Managed] {
            for resource in nmi_watches(mode) {
                if !resources.contains(resource) {
                    resources.push(resource);
                }
            }
        }
        resources
            .into_iter()
            .map(|resource| WatchTarget {
                resource,
                others: 0,
                own: self.nmi_count(resource) + self.mic_count(resource),
            })
            .filter(|t| t.own > 0)
            .collect()
    }
}

/// One resource's watches: `others` held by the rest of the cluster, `own` by the component
/// being started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchTarget {
    pub resource: &'static str,
    pub others: u64,
    pub own: u64,
}

/// Whether the component's watches must be open (after a start) or closed (after a stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchState {
    Open,
    Closed,
}

impl WatchTarget {
    /// Whether `seen` watches mean the component's own are `state`.
    fn holds(&self, seen: u64, state: WatchState) -> bool {
        match state {
            WatchState::Open => seen >= self.others + self.own,
            WatchState::Closed => seen <= self.others,
        }
    }

    /// `seen` against what is wanted, for a timeout error.
    fn describe(&self, seen: u64, state: WatchState) -> String {
        let (resource, others, own) = (self.resource, self.others, self.own);
        match state {
            WatchState::Open => format!(
                "{resource}: {seen} (want >= {}: {others} of others + {own} own)",
                others + own
            ),
            WatchState::Closed => {
                format!("{resource}: {seen} (want <= {others} of others, {own} own closed)")
            }
        }
    }
}

/// The number of WATCH requests the API server serves for `group`/`resource`, from its
/// Prometheus text (summed over scopes).
pub fn watch_count(metrics: &str, group: &str, resource: &str) -> u64 {
    let group = format!("group=\"{group}\"");
    let resource = format!("resource=\"{resource}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_longrunning_requests{"))
        .filter(|l| l.contains(&group) && l.contains(&resource) && l.contains("verb=\"WATCH\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// `Ok` when every target holds in `metrics`, else what was seen of each.
fn check_targets(metrics: &str, targets: &[WatchTarget], state: WatchState) -> Result<(), String> {
    let seen: Vec<(WatchTarget, u64)> = targets
        .iter()
        .map(|t| (*t, watch_count(metrics, GROUP, t.resource)))
        .collect();
    if seen.iter().all(|(t, n)| t.holds(*n, state)) {
        return Ok(());
    }
    Err(seen
        .iter()
        .map(|(t, n)| t.describe(*n, state))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Waits until `component`'s watches of every target are `state`; on timeout the error names
/// the counts last seen.
pub async fn wait_for_watches(
    client: &kube::Client,
    component: &str,
    targets: &[WatchTarget],
    state: WatchState,
    timeout: Duration,
) -> Result<(), LocalError> {
    until(Poll::every(POLL, timeout), move || async move {
        let request = match http::Request::get("/metrics").body(Vec::new()) {
            Ok(request) => request,
            Err(e) => return Check::Failed(format!("building the metrics request: {e}")),
        };
        match client.request_text(request).await {
            Ok(metrics) => match check_targets(&metrics, targets, state) {
                Ok(()) => Check::Done(()),
                Err(seen) => Check::Pending(seen),
            },
            Err(e) => Check::Pending(format!("reading /metrics: {e}")),
        }
    })
    .await
    .map_err(|source| LocalError::Wait {
        what: match state {
            WatchState::Open => format!("waiting for {component}'s watches to open"),
            WatchState::Closed => format!("waiting for {component}'s watches to close"),
        },
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(counts: &[(&str, u64)]) -> String {
        let mut text = String::from("# HELP apiserver_longrunning_requests x\n");
        for (resource, n) in counts {
            text.push_str(&format!(
                "apiserver_longrunning_requests{{component=\"apiserver\",group=\"{GROUP}\",resource=\"{resource}\",scope=\"cluster\",subresource=\"\",verb=\"WATCH\",version=\"v1\"}} {n}\n"
            ));
        }
        text
    }

    #[test]
    fn counts_watches_of_one_resource_across_scopes() {
        let text = r#"# HELP apiserver_longrunning_requests x
apiserver_longrunning_requests{component="apiserver",group="aadpodidentity.k8s.io",resource="azureidentities",scope="cluster",subresource="",verb="WATCH",version="v1"} 2
apiserver_longrunning_requests{component="apiserver",group="aadpodidentity.k8s.io",resource="azureidentities",scope="namespace",subresource="",verb="WATCH",version="v1"} 1
apiserver_longrunning_requests{component="apiserver",group="aadpodidentity.k8s.io",resource="azureidentitybindings",scope="cluster",subresource="",verb="WATCH",version="v1"} 0
apiserver_longrunning_requests{component="apiserver",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 3
"#;
        assert_eq!(watch_count(text, GROUP, "azureidentities"), 3);
        assert_eq!(watch_count(text, GROUP, "azureidentitybindings"), 0);
        assert_eq!(watch_count(text, GROUP, "azurepodidentityexceptions"), 0);
        assert_eq!(watch_count(text, "", "pods"), 3);
    }

    #[test]
    fn mics_watch_is_not_taken_for_an_nmis() {
        let with_mic = Watchers {
            nmi: None,
            nmis: 0,
            mic: true,
        };
        let targets = with_mic.nmi_targets(NmiMode::Standard, 2);
        // MIC and one of two NMIs watch assigned identities: NMI is not ready yet.
        let one_nmi = metrics(&[
            ("azureassignedidentities", 2),
            ("azurepodidentityexceptions", 2),
        ]);
        let seen = check_targets(&one_nmi, &targets, WatchState::Open).unwrap_err();
        assert!(
            seen.contains("azureassignedidentities: 2 (want >= 3: 1 of others + 2 own)"),
            "{seen}"
        );
        let both = metrics(&[
            ("azureassignedidentities", 3),
            ("azurepodidentityexceptions", 2),
        ]);
        assert_eq!(check_targets(&both, &targets, WatchState::Open), Ok(()));
        // After a stop, MIC's watch stays.
        assert!(check_targets(&both, &targets, WatchState::Closed).is_err());
        let stopped = metrics(&[("azureassignedidentities", 1)]);
        assert_eq!(
            check_targets(&stopped, &targets, WatchState::Closed),
            Ok(())
        );
    }

    #[test]
    fn one_nmi_restarting_counts_the_other_nodes_nmi_as_others() {
        let rest = Watchers {
            nmi: Some(NmiMode::Managed),
            nmis: 1,
            mic: false,
        };
        let targets = rest.nmi_targets(NmiMode::Managed, 1);
        assert!(targets.iter().all(|t| t.others == 1 && t.own == 1));
        let only_the_other = metrics(&[
            ("azureidentities", 1),
            ("azureidentitybindings", 1),
            ("azurepodidentityexceptions", 1),
        ]);
        assert!(check_targets(&only_the_other, &targets, WatchState::Open).is_err());
        assert_eq!(
            check_targets(&only_the_other, &targets, WatchState::Closed),
            Ok(())
        );
    }

    #[test]
    fn mic_counts_on_top_of_nmi_in_the_same_mode() {
        let standard = Watchers {
            nmi: Some(NmiMode::Standard),
            nmis: 2,
            mic: false,
        };
        let targets = standard.mic_targets();
        let others: Vec<(&str, u64)> = targets.iter().map(|t| (t.resource, t.others)).collect();
        assert_eq!(
            others,
            [
                ("azureidentitybindings", 0),
                ("azureidentities", 0),
                ("azureassignedidentities", 2)
            ]
        );
        let nmi_only = metrics(&[
            ("azureidentitybindings", 1),
            ("azureidentities", 1),
            ("azureassignedidentities", 2),
        ]);
        assert!(check_targets(&nmi_only, &targets, WatchState::Open).is_err());
        let managed = Watchers {
            nmi: Some(NmiMode::Managed),
            ..standard
        };
        assert_eq!(managed.mic_targets()[0].others, 2);
        assert_eq!(managed.mic_targets()[2].others, 0);
    }

    #[test]
    fn after_an_api_server_restart_every_watch_is_waited_for() {
        let all = Watchers {
            nmi: Some(NmiMode::Standard),
            nmis: 2,
            mic: true,
        }
        .all_targets();
        let owns: Vec<(&str, u64)> = all.iter().map(|t| (t.resource, t.own)).collect();
        assert_eq!(
            owns,
            [
                ("azureidentitybindings", 1),
                ("azureidentities", 1),
                ("azureassignedidentities", 3),
                ("azurepodidentityexceptions", 2),
            ]
        );
        assert!(all.iter().all(|t| t.others == 0));
        let nothing = Watchers {
            nmi: None,
            nmis: 0,
            mic: false,
        };
        assert!(nothing.all_targets().is_empty());
    }
}
