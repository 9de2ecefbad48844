//! podid: the conformance and end-to-end harness for AAD Pod Identity.
//!
//! The pieces, in the order a run uses them: [`session`] prepares a provider (toolchain, cluster,
//! mock cloud); [`runner`] turns each scenario × mode into a [`runner::Trial`] and runs it,
//! producing a report from the `podid-reports` crate; [`provider`] is the seam between the runner
//! and where the cluster lives.

pub mod expect;
pub mod instance;
pub mod jwt;
pub mod objects;
pub mod provider;
pub mod runner;
pub mod session;
