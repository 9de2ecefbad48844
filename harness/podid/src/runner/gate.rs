//! Serialises what scenarios share: NMI's command line, and the mock cloud's request log for
//! scenarios that count requests.

use std::sync::Arc;

use podid_scenario::NmiMode;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::provider::{Provider, ProviderError};

/// NMI's current configuration: mode, NMI flags, MIC flags.
pub type NmiSetting = Option<(NmiMode, Vec<String>, Vec<String>)>;

/// Lets scenarios with the same NMI configuration run together, and gives a scenario that
/// needs another configuration, or counts mock requests, the cluster to itself.
#[derive(Clone, Default)]
pub struct NmiGate {
    state: Arc<RwLock<NmiSetting>>,
}

/// Held while a scenario runs.
pub enum GateGuard {
    Shared(#[allow(dead_code)] OwnedRwLockReadGuard<NmiSetting>),
    Exclusive(#[allow(dead_code)] OwnedRwLockWriteGuard<NmiSetting>),
}

impl NmiGate {
    /// Waits until NMI runs with `mode` and `flags` (and MIC with `mic_flags` in standard
    /// mode), (re)configuring them if needed.
    pub async fn enter<P: Provider>(
        &self,
        provider: &P,
        mode: NmiMode,
        flags: &[String],
        mic_flags: &[String],
        exclusive: bool,
    ) -> Result<GateGuard, ProviderError> {
        let wanted = Some((mode, flags.to_vec(), mic_flags.to_vec()));
        if !exclusive {
            let shared = self.state.clone().read_owned().await;
            if *shared == wanted {
                return Ok(GateGuard::Shared(shared));
            }
        }
        let mut guard = self.state.clone().write_owned().await;
        if *guard != wanted {
            // Forget the old setting first: if reconfiguring fails, the next scenario retries.
            *guard = None;
            provider.configure_nmi(mode, flags, mic_flags).await?;
            *guard = wanted;
        }
        Ok(if exclusive {
            GateGuard::Exclusive(guard)
        } else {
            GateGuard::Shared(guard.downgrade())
        })
    }
}
