//! Free loopback ports for the control plane's listeners.

use std::net::{Ipv4Addr, TcpListener};

use crate::LocalError;

/// `count` distinct free loopback ports (all held until every one is found).
pub fn free_loopback_ports(count: usize) -> Result<Vec<u16>, LocalError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalError::io("finding free ports on 127.0.0.1", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LocalError::io("reading a bound port", e))
}
