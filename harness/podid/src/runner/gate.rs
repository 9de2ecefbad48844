//! Serialises what trials share: how NMI and MIC run, and the cloud's request log for trials
//! that count requests.

use std::sync::Arc;

use tokio::sync::{Mutex, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::provider::{ClusterSide, ConfigureReport, IdentityConfig, ProviderError};

/// The configuration NMI and MIC run with now (`None` before the first, or after a failure).
type Current = Option<IdentityConfig>;

/// Lets trials with the same NMI/MIC configuration run together, and gives a trial that needs
/// another configuration, or counts cloud requests, the cluster to itself.
#[derive(Clone, Default)]
pub struct ConfigGate {
    current: Arc<RwLock<Current>>,
    /// Held by the one trial at a time that asks for the write lock. Without it, every trial
    /// that arrived while the configuration was being switched would queue for the write lock
    /// too, and (the lock being fair) wait for the first trial of the new configuration to
    /// finish before finding there is nothing left to switch.
    switching: Arc<Mutex<()>>,
}

/// Held while a trial runs.
pub enum GateGuard {
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<Current>),
    Exclusive(#[allow(dead_code)] OwnedRwLockWriteGuard<Current>),
}

impl GateGuard {
    /// Forgets the configuration NMI and MIC run with (after a failed recovery), so the next
    /// trial reconfigures them. Only an exclusive holder can; a shared one cannot know that
    /// its neighbours are done.
    pub fn invalidate(&mut self) {
        if let GateGuard::Exclusive(guard) = self {
            **guard = None;
        }
    }
}

impl ConfigGate {
    /// Waits until NMI and MIC run as `wanted`, (re)configuring them if needed. The report is
    /// `Some` when this call did the reconfiguring (the caller answers for what it showed).
    pub async fn enter(
        &self,
        cluster: &dyn ClusterSide,
        wanted: &IdentityConfig,
        exclusive: bool,
    ) -> Result<(GateGuard, Option<ConfigureReport>), ProviderError> {
        if let Some(shared) = self.share(wanted, exclusive).await {
            return Ok((shared, None));
        }
        let _switching = self.switching.lock().await;
        // Another trial may have switched to `wanted` while this one queued.
        if let Some(shared) = self.share(wanted, exclusive).await {
            return Ok((shared, None));
        }
        let mut guard = self.current.clone().write_owned().await;
        let mut report = None;
        if guard.as_ref() != Some(wanted) {
            // Forget the old configuration first: if reconfiguring fails, the next trial retries.
            *guard = None;
            let configuring = std::time::Instant::now();
            report = Some(cluster.configure(wanted).await?);
            tracing::debug!(
                mode = wanted.mode.as_str(),
                took_ms = configuring.elapsed().as_millis() as u64,
                "NMI and MIC reconfigured"
            );
            *guard = Some(wanted.clone());
        }
        let guard = if exclusive {
            GateGuard::Exclusive(guard)
        } else {
            GateGuard::Shared(guard.downgrade())
        };
        Ok((guard, report))
    }

    /// A shared hold when NMI and MIC already run as `wanted` and the trial may share.
    async fn share(&self, wanted: &IdentityConfig, exclusive: bool) -> Option<GateGuard> {
        if exclusive {
            return None;
        }
        let shared = self.current.clone().read_owned().await;
        (shared.as_ref() == Some(wanted)).then_some(GateGuard::Shared(shared))
    }
}
