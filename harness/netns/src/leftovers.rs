//! Finding and removing namespaces and `/etc/netns` directories left by earlier podid runs.

use std::fs;
use std::path::Path;

use crate::{HOSTS_ROOT, NAME_PREFIX, NETNS_ROOT, NetNamespace, NetnsError};

/// Namespace names (and `/etc/netns` directories) that start with `podid-`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Names under `/run/netns`.
    pub namespaces: Vec<String>,
    /// Names under `/etc/netns` with no namespace of the same name.
    pub hosts_dirs: Vec<String>,
}

impl Leftovers {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.hosts_dirs.is_empty()
    }

    /// Keeps only names for which `keep` is true (e.g. to spare runs that are still alive).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.namespaces.retain(|n| keep(n));
        self.hosts_dirs.retain(|n| keep(n));
    }
}

/// Lists every `podid-*` namespace and `/etc/netns/podid-*` directory on this machine.
pub fn list_leftovers() -> Leftovers {
    let namespaces = podid_entries(Path::new(NETNS_ROOT));
    let hosts_dirs = podid_entries(Path::new(HOSTS_ROOT))
        .into_iter()
        .filter(|n| !namespaces.contains(n))
        .collect();
    Leftovers {
        namespaces,
        hosts_dirs,
    }
}

/// Deletes what [`list_leftovers`] found; returns the first error after trying everything.
pub fn delete_leftovers(leftovers: &Leftovers) -> Result<(), NetnsError> {
    let mut first_error = None;
    for name in leftovers.namespaces.iter().chain(&leftovers.hosts_dirs) {
        if let Err(e) = NetNamespace::delete_by_name(name) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Sorted entry names in `dir` starting with the podid prefix (none if `dir` is missing).
fn podid_entries(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(NAME_PREFIX))
        .collect();
    names.sort();
    names
}
