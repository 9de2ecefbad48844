//! TCP sockets created inside a namespace: servers the harness runs "on" a node, and probes into it.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::NetNamespace;

impl NetNamespace {
    /// Binds a TCP listener inside this namespace (e.g. a mock IMDS at 169.254.169.254:80).
    ///
    /// The socket belongs to this namespace for its whole life, whichever thread later accepts on it.
    pub fn bind_tcp(&self, addr: SocketAddr) -> io::Result<TcpListener> {
        self.run_inside(move || TcpListener::bind(addr))?
    }

    /// Connects to `addr` as seen from inside this namespace, within `timeout`.
    pub fn connect_tcp(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        self.run_inside(move || TcpStream::connect_timeout(&addr, timeout))?
    }
}
