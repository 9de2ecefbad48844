//! `CloudCore`: what the four services of one mock cloud share (state, keys, certificate, request
//! log, fault rules). Its fields stay private, so handlers and the public handle go through the
//! few methods here and in the submodules.

mod issue;
mod journal;
mod runtime;

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use crate::error::MockError;
use crate::fault::FaultSet;
use crate::hosts::blob_host;
use crate::record::RecordedRequest;
use crate::spec::CloudSpec;
use crate::state::CloudState;
use crate::tls::CloudTls;
use crate::token::TokenSigner;

/// The shared core of one mock cloud; servers hold it in an `Arc`.
pub(crate) struct CloudCore {
    state: Mutex<CloudState>,
    signer: TokenSigner,
    tls: CloudTls,
    log: Mutex<Vec<RecordedRequest>>,
    seq: AtomicU64,
    faults: Mutex<FaultSet>,
    runtime: Mutex<runtime::Runtime>,
}

/// Locks a mutex, recovering from poisoning (a panicked handler must not wedge the cloud).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Blob host names of every account in `state`: the certificate must cover each of them.
fn account_hosts(state: &CloudState) -> Vec<String> {
    state.account_names().iter().map(|a| blob_host(a)).collect()
}

impl CloudCore {
    /// Loads `spec` and generates the run's CA, server certificate (base names, `extra_sans` and
    /// every account host) and token-signing key.
    pub(crate) fn generate(spec: &CloudSpec, extra_sans: &[String]) -> Result<Self, MockError> {
        let state = CloudState::from_spec(spec)?;
        let tls = CloudTls::generate(extra_sans, &account_hosts(&state))?;
        let signer = TokenSigner::generate()?;
        Ok(Self {
            state: Mutex::new(state),
            signer,
            tls,
            log: Mutex::new(Vec::new()),
            seq: AtomicU64::new(1),
            faults: Mutex::new(FaultSet::default()),
            runtime: Mutex::new(runtime::Runtime::default()),
        })
    }

    /// Runs `f` with the state locked for reading. Every request waits on this lock: keep `f`
    /// short and never await inside it.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&CloudState) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Runs `f` with the state locked for writing (same rules as [`Self::with_state`]).
    pub(crate) fn with_state_mut<R>(&self, f: impl FnOnce(&mut CloudState) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// Adds the objects of `spec` atomically: the certificate is extended to new account hosts
    /// before the merged state becomes visible, and nothing changes on error.
    pub(crate) fn apply(&self, spec: &CloudSpec) -> Result<(), MockError> {
        self.with_state_mut(|state| {
            let mut next = state.clone();
            next.merge(spec)?;
            self.tls.ensure_names(&account_hosts(&next))?;
            *state = next;
            Ok(())
        })
    }

    /// Tenant GUID.
    pub(crate) fn tenant_id(&self) -> String {
        self.with_state(|s| s.tenant_id.clone())
    }

    /// The key that signs every token this cloud issues (handlers verify bearers with it).
    pub(crate) fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// The run's CA and server certificate.
    pub(crate) fn tls(&self) -> &CloudTls {
        &self.tls
    }
}
