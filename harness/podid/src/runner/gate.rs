//! Serialises what trials share: how NMI and MIC run, and the cloud's request log for trials
//! that count requests.

use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::provider::{ClusterSide, ConfigureReport, IdentityConfig, ProviderError};

/// The configuration NMI and MIC run with now (`None` before the first, or after a failure).
type Current = Option<IdentityConfig>;

/// Lets trials with the same NMI/MIC configuration run together, and gives a trial that needs
/// another configuration, or counts cloud requests, the cluster to itself.
#[derive(Clone, Default)]
pub struct ConfigGate {
    current: Arc<RwLock<Current>>,
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
        if !exclusive {
            let shared = self.current.clone().read_owned().await;
            if shared.as_ref() == Some(wanted) {
                return Ok((GateGuard::Shared(shared), None));
            }
        }
        let mut guard = self.current.clone().write_owned().await;
        let mut report = None;
        if guard.as_ref() != Some(wanted) {
            // Forget the old configuration first: if reconfiguring fails, the next trial retries.
            *guard = None;
            report = Some(cluster.configure(wanted).await?);
            *guard = Some(wanted.clone());
        }
        let guard = if exclusive {
            GateGuard::Exclusive(guard)
        } else {
            GateGuard::Shared(guard.downgrade())
        };
        Ok((guard, report))
    }
}
