//! Linux network namespaces standing in for nodes and pods: creation, veth links, sockets bound inside, cleanup.
//!
//! Everything here is root-only Linux code. Namespaces are named like `ip netns add` names them
//! (`/run/netns/NAME`), so `ip netns list` and `ip netns exec` see them, and every name podid
//! creates starts with [`NAME_PREFIX`] so leftovers of a crashed run can be found and removed.

mod command;
mod error;
mod hosts;
mod leftovers;
mod link;
mod name;
mod namespace;
mod socket;
mod sysctl;

pub use command::{child_dies_with_parent, exec_command};
pub use error::NetnsError;
pub use hosts::hosts_file_contents;
pub use leftovers::{Leftovers, delete_leftovers, list_leftovers};
pub use link::{Netlink, PodLink, connect_pod};
pub use name::{NAME_PREFIX, namespace_name, run_id_of, validate_interface_name};
pub use namespace::{HOSTS_ROOT, NETNS_ROOT, NetNamespace};
