//! kind clusters for podid, built entirely from inputs on this machine.
//!
//! Nothing here pulls an image: node and component images are assembled from Debian roots made
//! with `debootstrap` ([`rootfs`]), local files ([`image`]) and locally built Kubernetes
//! binaries ([`node_image`]). Clusters are created with the real `kind` CLI ([`cluster`]) from
//! a config podid renders ([`config`]), get pod networking from a small CNI set-up of podid's
//! own ([`cni`]), and run behind a `docker` wrapper ([`shim`]) on hosts whose Docker daemon
//! refuses `--privileged`. Long steps report their phases through [`progress::Progress`].
//!
//! A typical use:
//!
//! ```no_run
//! # async fn demo(inputs: podid_kind::NodeImageInputs) -> podid_kind::Result<()> {
//! use podid_kind::*;
//! let docker = Docker::connect().await?;
//! let cache = std::path::Path::new("/var/cache/podid/kind");
//! let image = ensure_node_image(&docker, &inputs, cache, &LogProgress).await?;
//! let kind = KindTool::detect(&docker, "/usr/local/bin/kind", &image.tag, &cache.join("shim")).await?;
//! let spec = ClusterSpec::new("run1", image.tag, 2);
//! let cluster = KindCluster::create(
//!     &docker, &kind, &spec, "run1", &cache.join("run1"), &CreateOptions::default(), &LogProgress,
//! ).await?;
//! cluster.delete().await?;
//! # Ok(()) }
//! ```

pub mod cache;
pub mod cluster;
pub mod cni;
pub mod config;
pub mod docker;
pub mod error;
pub mod image;
pub mod mirror;
pub mod net;
pub mod node_image;
mod process;
pub mod progress;
pub mod rootfs;
pub mod shim;

pub use cluster::{
    CleanScope, ClusterTimings, CreateOptions, KindCluster, KindNode, KindTool, Leftovers,
    clean_leftovers, create_network,
};
pub use config::{ClusterSpec, NodeSpec, cluster_name};
pub use docker::{Docker, ImageInfo, NetworkInfo, PrivilegedMode, RunSpec};
pub use error::{KindError, Result};
pub use image::{BuiltImage, ImageBase, ImageFile, ImageSpec, ensure_image};
pub use net::Ipv4Cidr;
pub use node_image::{ComponentImage, NodeImage, NodeImageInputs, PauseInput, ensure_node_image};
pub use progress::{LogProgress, NoProgress, Outcome, Phase, Progress};
pub use rootfs::{Rootfs, RootfsSpec, ensure_root_image, ensure_rootfs};
pub use shim::DockerShim;
