//! podid: the conformance and end-to-end harness for AAD Pod Identity.
//!
//! The pieces, in the order a run uses them: [`lifecycle`] starts a provider (through
//! [`session`] for the local one), plans the trials and runs them; [`runner`] turns each
//! scenario × mode into a [`runner::Trial`] and runs it, producing a report from the
//! `podid-reports` crate; [`provider`] is the seam between the runner and where the cluster
//! and the cloud live.

pub mod clients;
pub mod expect;
pub mod instance;
pub mod jwt;
pub mod lifecycle;
pub mod objects;
pub mod provider;
pub mod runner;
pub mod session;
