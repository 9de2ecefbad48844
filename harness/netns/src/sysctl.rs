//! Per-namespace `net.*` sysctls, written through `/proc/sys` from a thread inside the namespace.

use std::fs;
use std::path::PathBuf;

use crate::{NetNamespace, NetnsError};

impl NetNamespace {
    /// Writes a `net.*` sysctl (e.g. `net.ipv4.conf.all.route_localnet`) in this namespace only.
    pub fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetnsError> {
        let path = sysctl_path(key).map_err(|reason| NetnsError::InvalidName {
            name: key.to_string(),
            reason,
        })?;
        let value = value.to_string();
        let path_in = path.clone();
        self.run_inside(move || fs::write(&path_in, value))
            .and_then(|r| r)
            .map_err(|e| NetnsError::io(format!("writing {}", path.display()), self.name(), e))
    }

    /// Reads a `net.*` sysctl as this namespace sees it (trimmed).
    pub fn read_sysctl(&self, key: &str) -> Result<String, NetnsError> {
        let path = sysctl_path(key).map_err(|reason| NetnsError::InvalidName {
            name: key.to_string(),
            reason,
        })?;
        let path_in = path.clone();
        self.run_inside(move || fs::read_to_string(&path_in))
            .and_then(|r| r)
            .map(|s| s.trim().to_string())
            .map_err(|e| NetnsError::io(format!("reading {}", path.display()), self.name(), e))
    }
}

/// The `/proc/sys` path of a dotted `net.*` key; only `net.*` keys are per namespace.
fn sysctl_path(key: &str) -> Result<PathBuf, &'static str> {
    if !key.starts_with("net.") {
        return Err("only net.* sysctls belong to a network namespace");
    }
    if key.split('.').any(|part| part.is_empty() || part == "..") || key.contains('/') {
        return Err("malformed sysctl key");
    }
    Ok(PathBuf::from("/proc/sys").join(key.replace('.', "/")))
}

#[cfg(test)]
mod tests {
    use super::sysctl_path;

    #[test]
    fn net_keys_map_to_proc_sys() {
        assert_eq!(
            sysctl_path("net.ipv4.conf.all.route_localnet").unwrap(),
            std::path::Path::new("/proc/sys/net/ipv4/conf/all/route_localnet")
        );
    }

    #[test]
    fn non_net_and_malformed_keys_are_refused() {
        assert!(sysctl_path("kernel.pid_max").is_err());
        assert!(sysctl_path("net..ipv4").is_err());
        assert!(sysctl_path("net.ipv4/../x").is_err());
    }
}
