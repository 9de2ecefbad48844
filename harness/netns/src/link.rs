//! Interfaces, addresses and routes inside a namespace, over rtnetlink.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{LinkDummy, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};
use tokio::task::JoinHandle;

use crate::name::validate_interface_name;
use crate::{NetNamespace, NetnsError};

/// A netlink connection whose socket lives inside one namespace; requests act on that namespace.
pub struct Netlink {
    namespace: String,
    handle: rtnetlink::Handle,
    connection: JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl NetNamespace {
    /// Opens a netlink connection inside this namespace. Needs a tokio runtime.
    pub async fn netlink(&self) -> Result<Netlink, NetnsError> {
        let runtime = tokio::runtime::Handle::current();
        let (connection, handle, _) = self
            .run_inside(move || {
                let _entered = runtime.enter();
                rtnetlink::new_connection()
            })
            .and_then(|r| r)
            .map_err(|e| NetnsError::io("opening a netlink socket", self.name(), e))?;
        Ok(Netlink {
            namespace: self.name().to_string(),
            handle,
            connection: tokio::spawn(connection),
        })
    }
}

impl Netlink {
    /// A netlink connection in the namespace this process runs in (the host's), for interfaces
    /// the project owns there, such as the bridge of its own container network.
    pub fn host() -> Result<Netlink, NetnsError> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| NetnsError::io("opening a netlink socket", "host", e))?;
        Ok(Netlink {
            namespace: "host".to_string(),
            handle,
            connection: tokio::spawn(connection),
        })
    }

    /// The index of interface `name`.
    pub async fn link_index(&self, name: &str) -> Result<u32, NetnsError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) | Err(rtnetlink::Error::NetlinkError(_)) => Err(NetnsError::NoSuchInterface {
                interface: name.to_string(),
                namespace: self.namespace.clone(),
            }),
            Err(e) => Err(self.error(format!("looking up interface {name}"), e)),
        }
    }

    /// Brings interface `name` up (e.g. `lo`, which starts down in a new namespace).
    pub async fn set_up(&self, name: &str) -> Result<(), NetnsError> {
        let index = self.link_index(name).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| self.error(format!("bringing {name} up"), e))
    }

    /// Creates dummy interface `name`, holding each address as a /32, and brings it up.
    pub async fn add_dummy(&self, name: &str, addresses: &[Ipv4Addr]) -> Result<(), NetnsError> {
        validate_interface_name(name)?;
        self.handle
            .link()
            .add(LinkDummy::new(name).up().build())
            .execute()
            .await
            .map_err(|e| self.error(format!("creating dummy interface {name}"), e))?;
        for address in addresses {
            self.add_address(name, *address, 32).await?;
        }
        Ok(())
    }

    /// Puts `addresses` (/32 each) on a local interface: dummy `name` where the kernel has dummy
    /// interfaces, else `lo`. Returns the interface that holds them.
    pub async fn add_local_addresses(
        &self,
        name: &str,
        addresses: &[Ipv4Addr],
    ) -> Result<String, NetnsError> {
        match self.add_dummy(name, addresses).await {
            Ok(()) => Ok(name.to_string()),
            Err(NetnsError::Netlink {
                source: rtnetlink::Error::NetlinkError(message),
                ..
            }) if message.code.map(|c| c.get()) == Some(-nix::libc::EOPNOTSUPP) => {
                tracing::debug!(namespace = %self.namespace, "no dummy interfaces in this kernel; using lo");
                self.set_up("lo").await?;
                for address in addresses {
                    self.add_address("lo", *address, 32).await?;
                }
                Ok("lo".to_string())
            }
            Err(e) => Err(e),
        }
    }

    /// Adds `address/prefix` to interface `name`.
    pub async fn add_address(
        &self,
        name: &str,
        address: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetnsError> {
        let index = self.link_index(name).await?;
        self.handle
            .address()
            .add(index, IpAddr::V4(address), prefix)
            .execute()
            .await
            .map_err(|e| self.error(format!("adding {address}/{prefix} to {name}"), e))
    }

    /// Adds a `/32` route to `destination` straight out of `device` (scope link, no gateway).
    pub async fn add_link_route(
        &self,
        destination: Ipv4Addr,
        device: &str,
    ) -> Result<(), NetnsError> {
        let index = self.link_index(device).await?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination, 32)
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(|e| self.error(format!("adding route {destination}/32 dev {device}"), e))
    }

    /// Adds the default route via `gateway` out of `device`.
    pub async fn add_default_route(
        &self,
        gateway: Ipv4Addr,
        device: &str,
    ) -> Result<(), NetnsError> {
        let index = self.link_index(device).await?;
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(|e| self.error(format!("adding default route via {gateway}"), e))
    }

    /// Creates a veth pair: `local` here and `peer` directly inside `peer_namespace`, both down.
    pub async fn add_veth(
        &self,
        local: &str,
        peer: &str,
        peer_namespace: &NetNamespace,
    ) -> Result<(), NetnsError> {
        validate_interface_name(local)?;
        validate_interface_name(peer)?;
        let peer_message = LinkUnspec::new_with_name(peer)
            .setns_by_fd(peer_namespace.fd().as_raw_fd())
            .build();
        let message = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(local.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| {
                self.error(
                    format!("creating veth {local} <-> {peer}@{}", peer_namespace.name()),
                    e,
                )
            })
    }

    /// Deletes interface `name` (a veth takes its peer with it); a missing one is not an error.
    pub async fn delete_link(&self, name: &str) -> Result<(), NetnsError> {
        let index = match self.link_index(name).await {
            Ok(index) => index,
            Err(NetnsError::NoSuchInterface { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|e| self.error(format!("deleting interface {name}"), e))
    }

    /// Removes `address` from interface `name`; an address it does not hold is not an error.
    pub async fn delete_address(&self, name: &str, address: Ipv4Addr) -> Result<(), NetnsError> {
        for message in self.address_messages(name).await? {
            if ipv4_of(&message).any(|ip| ip == address) {
                self.handle
                    .address()
                    .del(message)
                    .execute()
                    .await
                    .map_err(|e| self.error(format!("removing {address} from {name}"), e))?;
            }
        }
        Ok(())
    }

    /// The kernel's address messages of interface `name`.
    async fn address_messages(
        &self,
        name: &str,
    ) -> Result<Vec<rtnetlink::packet_route::address::AddressMessage>, NetnsError> {
        let index = self.link_index(name).await?;
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.error(format!("listing addresses of {name}"), e))
    }

    /// Addresses (IPv4) on interface `name`, for checks.
    pub async fn ipv4_addresses(&self, name: &str) -> Result<Vec<Ipv4Addr>, NetnsError> {
        Ok(self
            .address_messages(name)
            .await?
            .iter()
            .flat_map(ipv4_of)
            .collect())
    }

    fn error(&self, action: String, source: rtnetlink::Error) -> NetnsError {
        NetnsError::netlink(action, &self.namespace, source)
    }
}

/// The IPv4 addresses an address message carries.
fn ipv4_of(
    message: &rtnetlink::packet_route::address::AddressMessage,
) -> impl Iterator<Item = Ipv4Addr> + '_ {
    use rtnetlink::packet_route::address::AddressAttribute;
    message.attributes.iter().filter_map(|a| match a {
        AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    })
}

/// A point-to-point link between a node namespace and a pod namespace, Calico style: the pod has
/// `pod_ip/32` and a default route via `gateway`; the node has `gateway/32` on its end and a /32
/// route to the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLink {
    /// Interface name on the node side (unique within the node namespace).
    pub node_interface: String,
    /// Interface name on the pod side (e.g. `eth0`).
    pub pod_interface: String,
    /// The node-side address, the pod's gateway (e.g. `10.244.N.1`).
    pub gateway: Ipv4Addr,
    /// The pod's address (e.g. `10.244.N.K`).
    pub pod_ip: Ipv4Addr,
}

/// Wires `pod` to `node` as described by `link`: veth pair, addresses, routes, all up.
pub async fn connect_pod(
    node: &NetNamespace,
    pod: &NetNamespace,
    link: &PodLink,
) -> Result<(), NetnsError> {
    let node_nl = node.netlink().await?;
    let pod_nl = pod.netlink().await?;
    node_nl
        .add_veth(&link.node_interface, &link.pod_interface, pod)
        .await?;
    node_nl
        .add_address(&link.node_interface, link.gateway, 32)
        .await?;
    node_nl.set_up(&link.node_interface).await?;
    node_nl
        .add_link_route(link.pod_ip, &link.node_interface)
        .await?;
    pod_nl.set_up("lo").await?;
    pod_nl
        .add_address(&link.pod_interface, link.pod_ip, 32)
        .await?;
    pod_nl.set_up(&link.pod_interface).await?;
    pod_nl
        .add_link_route(link.gateway, &link.pod_interface)
        .await?;
    pod_nl
        .add_default_route(link.gateway, &link.pod_interface)
        .await?;
    Ok(())
}
