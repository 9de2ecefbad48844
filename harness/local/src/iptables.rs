//! NMI's dependence on the `iptables` binary, and its `aad-metadata` chain in a node namespace.

use std::path::PathBuf;

use podid_netns::NetNamespace;

use crate::LocalError;

/// The nat chain NMI programs.
pub const NMI_CHAIN: &str = "aad-metadata";

/// Finds `iptables` on `PATH`, or says how to get it (NMI exits at start without it).
pub fn require_iptables() -> Result<PathBuf, LocalError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("iptables"))
        .find(|p| p.is_file())
        .ok_or_else(|| LocalError::MissingProgram {
            program: "iptables".into(),
            hint: "NMI programs its DNAT rule with the iptables binary; install it (Debian: apt-get install -y iptables)".into(),
        })
}

/// Whether NMI's jump from nat PREROUTING is present in `namespace`.
pub async fn nmi_jump_present(namespace: &NetNamespace) -> bool {
    namespace
        .command("iptables")
        .args(["-w", "-t", "nat", "-C", "PREROUTING", "-j", NMI_CHAIN])
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

/// Removes NMI's jump and chain from `namespace` (what NMI itself does on SIGTERM).
pub async fn remove_nmi_chain(namespace: &NetNamespace) {
    for args in [
        vec!["-D", "PREROUTING", "-j", NMI_CHAIN],
        vec!["-F", NMI_CHAIN],
        vec!["-X", NMI_CHAIN],
    ] {
        let _ = namespace
            .command("iptables")
            .args(["-w", "-t", "nat"])
            .args(args)
            .output()
            .await;
    }
}
