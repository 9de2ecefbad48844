//! Progress reporting: image builds and cluster creation take from seconds (cached) to minutes
//! (cold), so they announce each phase; front ends (CLI, tests, logs) decide how to show it.

use std::fmt;
use std::time::Duration;

/// One step of preparing images or a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// A Debian root built with debootstrap (`name` is the root's name, e.g. "node").
    Rootfs {
        /// Which root.
        name: String,
    },
    /// A root tarball imported as a docker image.
    RootImage {
        /// Which root.
        name: String,
    },
    /// The pause binary compiled from its C source.
    Pause,
    /// The control-plane, proxy, DNS and pause images the node preloads.
    ComponentImages,
    /// The node image assembled from the base root, kind's files and the Kubernetes binaries.
    NodeImage,
    /// One generic image from an [`ImageSpec`](crate::image::ImageSpec).
    Image {
        /// The image's tag.
        tag: String,
    },
    /// `kind create cluster`.
    CreateCluster {
        /// The cluster's name.
        name: String,
    },
    /// Pod networking configured on every node.
    Cni,
    /// Waiting for every node to report Ready.
    NodesReady,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Rootfs { name } => write!(f, "Debian root `{name}`"),
            Phase::RootImage { name } => write!(f, "image of the Debian root `{name}`"),
            Phase::Pause => f.write_str("pause binary"),
            Phase::ComponentImages => f.write_str("component images"),
            Phase::NodeImage => f.write_str("kind node image"),
            Phase::Image { tag } => write!(f, "image {tag}"),
            Phase::CreateCluster { name } => write!(f, "kind cluster {name}"),
            Phase::Cni => f.write_str("pod network"),
            Phase::NodesReady => f.write_str("nodes Ready"),
        }
    }
}

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The work was done now.
    Done,
    /// A cached result was reused.
    Cached,
}

/// Receives phase boundaries. Implementations must be cheap: they are called inline.
pub trait Progress: Send + Sync {
    /// A phase began (not called for phases answered from the cache).
    fn started(&self, phase: &Phase);
    /// A phase ended after `took`.
    fn finished(&self, phase: &Phase, outcome: Outcome, took: Duration);
}

/// Ignores all progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&self, _phase: &Phase) {}
    fn finished(&self, _phase: &Phase, _outcome: Outcome, _took: Duration) {}
}

/// Forwards progress to `tracing` at info level (cached phases at debug).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogProgress;

impl Progress for LogProgress {
    fn started(&self, phase: &Phase) {
        tracing::info!("{phase}: started");
    }
    fn finished(&self, phase: &Phase, outcome: Outcome, took: Duration) {
        match outcome {
            Outcome::Done => tracing::info!(secs = took.as_secs_f64(), "{phase}: done"),
            Outcome::Cached => tracing::debug!(secs = took.as_secs_f64(), "{phase}: cached"),
        }
    }
}
