//! Expectations on what the cluster and the cloud hold once a step's action is done: API
//! objects, the identities on each node's machine, NMI's iptables chain; and waiting for cloud
//! requests.

use std::time::{Duration, Instant};

use podid_reports::Failure;
use podid_scenario::{ChainState, Expect, Located, MachineExpect, Name, RequestExpect};
use podid_wait::{Check, Poll};

use super::{POLL, objects};
use crate::instance::CLUSTER_IDENTITY;
use crate::runner::error::StepError;
use crate::runner::scenario_run::ScenarioRun;

/// Every failed `objects`, `nodeIdentities` and `iptables` expectation.
pub(super) async fn check(
    run: &ScenarioRun<'_>,
    expect: &Expect,
) -> Result<Vec<Failure>, StepError> {
    let mut failures = objects::check(run, &expect.objects).await?;
    for (node, want) in &expect.node_identities {
        failures.extend(node_identities(run, node, want).await?);
    }
    for (node, want) in &expect.iptables {
        failures.extend(iptables(run, node, want).await?);
    }
    Ok(failures)
}

/// Names → resource IDs (lower-cased), failing for a name with no identity behind it.
fn resource_ids(run: &ScenarioRun<'_>, names: &[Name]) -> Result<Vec<(String, String)>, StepError> {
    names
        .iter()
        .map(|n| {
            let id = run
                .inst
                .identity_resource_id(n)
                .ok_or_else(|| match n.as_str() {
                    CLUSTER_IDENTITY => StepError::NoClusterIdentity,
                    other => StepError::UnknownIdentity(other.to_string()),
                })?;
            Ok((n.value.clone(), id.to_ascii_lowercase()))
        })
        .collect()
}

/// What a node's machine holds against `want`.
async fn node_identities(
    run: &ScenarioRun<'_>,
    node: &Name,
    want: &MachineExpect,
) -> Result<Vec<Failure>, StepError> {
    let machine = run.machine(node)?;
    let held = run.env.provider.cloud.machine_identities(&machine).await?;
    let held_ids: Vec<String> = held
        .user_assigned
        .iter()
        .map(|id| id.to_ascii_lowercase())
        .collect();
    let has = resource_ids(run, &want.has)?;
    let lacks = resource_ids(run, &want.lacks)?;
    // The names of what the machine holds, where the expectation names them.
    let known: Vec<&(String, String)> = has.iter().chain(&lacks).collect();
    let holding = || {
        let names: Vec<String> = held_ids
            .iter()
            .map(|id| {
                known
                    .iter()
                    .find(|(_, k)| k == id)
                    .map_or_else(|| id.clone(), |(n, _)| n.clone())
            })
            .collect();
        let system = match &held.system_assigned {
            Some(p) => format!("; system-assigned principal {p}"),
            None => String::new(),
        };
        format!("[{}]{system}", names.join(", "))
    };
    let what = format!("nodeIdentities.{}", node.value);
    let mut failures = Vec::new();
    let missing: Vec<&str> = has
        .iter()
        .filter(|(_, id)| !held_ids.contains(id))
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        failures.push(Failure {
            expectation: format!("{what}.has"),
            expected: format!("{} holds {}", node.value, missing.join(", ")),
            actual: holding(),
            message: format!("{}'s machine lacks {}", node.value, missing.join(", ")),
        });
    }
    let present: Vec<&str> = lacks
        .iter()
        .filter(|(_, id)| held_ids.contains(id))
        .map(|(n, _)| n.as_str())
        .collect();
    if !present.is_empty() {
        failures.push(Failure {
            expectation: format!("{what}.lacks"),
            expected: format!("{} does not hold {}", node.value, present.join(", ")),
            actual: holding(),
            message: format!("{}'s machine holds {}", node.value, present.join(", ")),
        });
    }
    if let Some(enabled) = &want.system_assigned {
        let recorded = run.inst.system_assigned.get(node.as_str());
        let wrong = match (enabled.value, &held.system_assigned) {
            (false, None) => None,
            (false, Some(p)) => {
                Some(("not enabled".to_string(), format!("enabled, principal {p}")))
            }
            (true, None) => Some(("enabled".to_string(), "not enabled".to_string())),
            (true, Some(p)) => match recorded {
                Some(r) if r != p => Some((
                    format!("enabled, principal {r} (as enableSystemAssigned got it)"),
                    format!("enabled, principal {p}"),
                )),
                _ => None,
            },
        };
        if let Some((expected, actual)) = wrong {
            failures.push(Failure {
                expectation: format!("{what}.systemAssigned"),
                message: format!("{}'s system-assigned identity is {actual}", node.value),
                expected,
                actual,
            });
        }
    }
    Ok(failures)
}

/// NMI's chain on a node against `want`.
async fn iptables(
    run: &ScenarioRun<'_>,
    node: &Name,
    want: &Located<ChainState>,
) -> Result<Option<Failure>, StepError> {
    if run.inst.node(node).is_none() {
        return Err(StepError::UnknownNode(node.value.clone()));
    }
    let present = run.env.provider.cluster.nmi_chain_present(node).await?;
    let got = if present {
        ChainState::Present
    } else {
        ChainState::Absent
    };
    let word = |s: ChainState| match s {
        ChainState::Present => "present",
        ChainState::Absent => "absent",
    };
    Ok((got != want.value).then(|| Failure {
        expectation: format!("iptables.{}", node.value),
        expected: format!("aad-metadata chain {} on {}", word(want.value), node.value),
        actual: word(got).into(),
        message: format!(
            "NMI's aad-metadata chain is {} on {}",
            word(got),
            node.value
        ),
    }))
}

/// Waits until the cloud has received what `requests` describes; on timeout the failures say
/// what was missing at the last look.
pub(super) async fn wait_for_requests(
    run: &ScenarioRun<'_>,
    requests: &[Located<RequestExpect>],
    timeout: Duration,
) -> Vec<Failure> {
    let cursor = run.env.provider.request_cursor();
    let started = Instant::now();
    let waited = podid_wait::until(Poll::every(POLL, timeout), || async {
        let failures = super::judge_requests(run, requests, cursor);
        if failures.is_empty() {
            Check::Done(())
        } else {
            Check::Pending(failures)
        }
    })
    .await;
    match waited {
        Ok(()) => Vec::new(),
        Err(end) => {
            let secs = end.waited().as_secs().max(started.elapsed().as_secs());
            end.into_state()
                .into_iter()
                .map(|f| Failure {
                    message: format!("after waiting {secs}s: {}", f.message),
                    ..f
                })
                .collect()
        }
    }
}
