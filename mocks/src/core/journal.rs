//! The request log with its sequence numbers, and the fault rules consulted before each request.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{CloudCore, lock};
use crate::fault::{FaultId, FaultRule, FaultTarget};
use crate::record::RecordedRequest;

impl CloudCore {
    /// Claims the sequence number of a request that has just arrived.
    pub(crate) fn claim_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Sequence number the next request will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Appends a finished request to the log.
    pub(crate) fn record(&self, r: RecordedRequest) {
        lock(&self.log).push(r);
    }

    /// Recorded requests for which `keep` holds, in sequence order (the log is in finish order).
    pub(crate) fn requests(&self, keep: impl Fn(&RecordedRequest) -> bool) -> Vec<RecordedRequest> {
        let mut all: Vec<RecordedRequest> = lock(&self.log)
            .iter()
            .filter(|r| keep(r))
            .cloned()
            .collect();
        all.sort_by_key(|r| r.seq);
        all
    }

    /// Installs a fault rule; its `duration` counts from now.
    pub(crate) fn add_fault(&self, rule: FaultRule) -> FaultId {
        lock(&self.faults).add(rule, Instant::now())
    }

    /// Removes one fault rule; returns whether it was still installed.
    pub(crate) fn remove_fault(&self, id: FaultId) -> bool {
        lock(&self.faults).remove(id, Instant::now())
    }

    /// Removes every fault rule.
    pub(crate) fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Takes one use of the first fault rule matching this request, if any.
    pub(crate) fn take_fault(&self, target: &FaultTarget<'_>) -> Option<FaultRule> {
        lock(&self.faults).take(target, Instant::now())
    }
}
