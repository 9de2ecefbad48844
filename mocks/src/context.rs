//! The per-server context every handler receives: the cloud's core plus who this server is.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::core::CloudCore;
use crate::record::Service;
use crate::spec::MachineRef;

/// Per-server context handed to every handler.
pub(crate) struct ServerCtx {
    pub core: Arc<CloudCore>,
    pub service: Service,
    pub label: String,
    pub machine: Option<MachineRef>,
    pub local_addr: SocketAddr,
}
