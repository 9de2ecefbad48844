//! Keeping apart standard-mode trials that share MIC but use the same binding selector.
//!
//! Upstream MIC, unless namespaced, matches an AzureIdentityBinding to pods of *every*
//! namespace whose `aadpodidbinding` label equals its selector (sut-behaviors §2.4; issue
//! #1065). Two trials that both bind selector `reader` would each get AzureAssignedIdentities
//! for the other's identity. So a shared standard-mode trial first takes its selectors, and a
//! trial whose selectors are taken waits until their holder is done. Selectors are taken
//! before the configuration gate and all at once, so no two trials can wait on each other.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::Trial;

/// The label NMI and MIC match bindings by.
const BINDING_LABEL: &str = "aadpodidbinding";

/// The selectors taken by running trials.
#[derive(Clone, Default)]
pub struct SelectorLocks {
    taken: Arc<Mutex<HashSet<String>>>,
    released: Arc<Notify>,
}

/// Held while a trial runs; gives its selectors back when dropped.
pub struct SelectorGuard {
    locks: SelectorLocks,
    held: Vec<String>,
}

impl Drop for SelectorGuard {
    fn drop(&mut self) {
        let mut taken = self.locks.taken.lock().unwrap_or_else(|p| p.into_inner());
        for s in &self.held {
            taken.remove(s);
        }
        drop(taken);
        self.locks.released.notify_waiters();
    }
}

impl SelectorLocks {
    /// Waits until none of `selectors` is taken, then takes them all.
    pub async fn take(&self, selectors: Vec<String>) -> SelectorGuard {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking, so a release between the look and the wait is seen.
            released.as_mut().enable();
            {
                let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
                if selectors.iter().all(|s| !taken.contains(s)) {
                    taken.extend(selectors.iter().cloned());
                    return SelectorGuard {
                        locks: self.clone(),
                        held: selectors,
                    };
                }
            }
            released.await;
        }
    }
}

/// The binding selectors a trial uses, as written: its bindings' selectors and its pods'
/// `aadpodidbinding` labels, in its cluster section, `apply` steps and `patch` steps.
pub fn selectors_of(trial: &Trial) -> Vec<String> {
    let scenario = trial.scenario();
    let applied = trial
        .steps()
        .filter_map(|(_, s)| s.value.apply.as_ref())
        .collect::<Vec<_>>();
    let mut out: Vec<String> = Vec::new();
    for cluster in std::iter::once(&scenario.cluster).chain(applied) {
        for b in cluster.azure_identity_bindings.values() {
            out.push(b.selector.value.clone());
        }
        for pod in cluster.pods.values() {
            if let Some(v) = pod.labels.get(BINDING_LABEL) {
                out.push(v.value.clone());
            }
        }
    }
    for (_, step) in trial.steps() {
        if let Some(p) = &step.value.patch {
            collect_label_values(&p.patch.value, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Every `aadpodidbinding` value (and binding `selector`) anywhere in a patch.
fn collect_label_values(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    (BINDING_LABEL | "selector", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => collect_label_values(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for v in items {
                collect_label_values(v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_taken_selector_waits_for_its_holder_and_others_do_not() {
        let locks = SelectorLocks::default();
        let first = locks.take(vec!["reader".into(), "writer".into()]).await;
        let other = tokio::time::timeout(Duration::from_secs(1), locks.take(vec!["other".into()]))
            .await
            .expect("a disjoint selector is not held up");
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { locks.take(vec!["writer".into()]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "`writer` is taken");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("released selectors are taken at once")
            .unwrap();
        drop((second, other));
        assert!(locks.taken.lock().unwrap().is_empty());
    }
}
