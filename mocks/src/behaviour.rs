//! Cloud-wide behaviours switched at run time: how IMDS and ARM answer beyond their defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How every IMDS of the cloud behaves besides answering token requests. Both are off by
/// default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImdsBehaviour {
    /// For this long after an identity is assigned to a machine (ARM PATCH/PUT, or
    /// `MockCloud::assign_identity`/`enable_system_assigned`), that machine's IMDS answers
    /// requests for it `400 Identity not found`, as real IMDS does while an assignment
    /// propagates (aad-pod-identity Known Issues, "Identity not found").
    #[serde(with = "crate::millis")]
    pub propagation_delay: Option<Duration>,
    /// Identity-token requests per machine in any sliding one-second window above which IMDS
    /// answers `429 too_many_requests` (IMDS rate limits).
    pub requests_per_second: Option<u32>,
}

/// How ARM behaves besides authenticating callers. Both are off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArmBehaviour {
    /// Check every request against the caller's role assignments (`AuthorizationFailed`,
    /// `LinkedAuthorizationFailed`); otherwise any authenticated caller may do anything.
    pub authorization: bool,
    /// VM/VMSS PATCH and PUT are long-running: `200` with `provisioningState: Updating` and
    /// `Azure-AsyncOperation`, whose status answers `InProgress` this many times before
    /// `Succeeded`; the machine changes only then. `0` answers synchronously.
    pub async_polls: u32,
}
