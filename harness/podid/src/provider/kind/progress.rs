//! Start-up progress of the kind provider (image builds, cluster creation) as lines on stderr
//! and in the log, so a long cold build never looks hung.

use std::time::Duration;

use podid_kind::{Outcome, Phase, Progress};

/// Prints each phase as it starts and ends.
#[derive(Debug, Default, Clone, Copy)]
pub struct KindProgress;

impl Progress for KindProgress {
    fn started(&self, phase: &Phase) {
        eprintln!("podid: kind: {phase} …");
        tracing::info!(%phase, "started");
    }

    fn finished(&self, phase: &Phase, outcome: Outcome, took: Duration) {
        eprintln!(
            "podid: kind: {phase}: {outcome:?} in {:.1}s",
            took.as_secs_f64()
        );
        tracing::info!(%phase, ?outcome, took_ms = took.as_millis() as u64, "finished");
    }
}
