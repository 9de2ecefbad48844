//! The control API: drive a running mock cloud from another process over HTTP+JSON. It lets the
//! harness install the mock into a cluster as a pod and still change its state, add faults and
//! read its request log, through a port-forward to a loopback port inside the pod.
//!
//! No TLS and no authentication: the server must listen on loopback only.

mod client;
mod error;
mod server;
pub mod wire;

pub use client::RemoteMockCloud;
pub use error::ControlError;
pub use server::{ControlServer, router, serve};
pub use wire::{CloudInfo, Failure, FailureKind};
