//! The cloud-wide behaviours switched at run time and what IMDS throttling remembers.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{CloudCore, lock};
use crate::behaviour::{ArmBehaviour, ImdsBehaviour};
use crate::spec::MachineRef;

/// The window IMDS rate limits are counted in.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Behaviours in force plus the recent identity requests of each machine.
#[derive(Debug, Default)]
pub(crate) struct Runtime {
    pub imds: ImdsBehaviour,
    pub arm: ArmBehaviour,
    /// Arrival times of the identity-token requests each machine let through in the last
    /// second (only kept while a rate limit is set).
    imds_recent: HashMap<MachineRef, VecDeque<Instant>>,
}

impl CloudCore {
    /// The IMDS behaviour in force.
    pub(crate) fn imds_behaviour(&self) -> ImdsBehaviour {
        lock(&self.runtime).imds
    }

    /// Replaces the IMDS behaviour; the request history restarts.
    pub(crate) fn set_imds_behaviour(&self, b: ImdsBehaviour) {
        let mut rt = lock(&self.runtime);
        rt.imds = b;
        rt.imds_recent.clear();
    }

    /// The ARM behaviour in force.
    pub(crate) fn arm_behaviour(&self) -> ArmBehaviour {
        lock(&self.runtime).arm
    }

    /// Replaces the ARM behaviour.
    pub(crate) fn set_arm_behaviour(&self, b: ArmBehaviour) {
        lock(&self.runtime).arm = b;
    }

    /// Counts an identity-token request of `machine`; `false` when it is over the machine's
    /// rate limit (the request is then refused and not counted).
    pub(crate) fn admit_imds_request(&self, machine: &MachineRef, now: Instant) -> bool {
        let mut rt = lock(&self.runtime);
        let Some(limit) = rt.imds.requests_per_second else {
            return true;
        };
        let recent = rt.imds_recent.entry(machine.clone()).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= limit as usize {
            return false;
        }
        recent.push_back(now);
        true
    }
}
