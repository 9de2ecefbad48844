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

/// Which of NMI's nat rules are present in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NmiRules {
    /// The jump from PREROUTING to [`NMI_CHAIN`].
    pub jump: bool,
    /// [`NMI_CHAIN`] itself.
    pub chain: bool,
}

impl NmiRules {
    /// Neither the jump nor the chain is left.
    pub fn gone(&self) -> bool {
        !self.jump && !self.chain
    }
}

impl std::fmt::Display for NmiRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let present = |p: bool| if p { "present" } else { "gone" };
        write!(
            f,
            "PREROUTING jump {}, chain {NMI_CHAIN} {}",
            present(self.jump),
            present(self.chain)
        )
    }
}

/// Looks for NMI's jump and chain in `namespace`; `Err` when iptables cannot be run.
pub async fn nmi_rules(namespace: &NetNamespace) -> Result<NmiRules, String> {
    let jump = iptables_succeeds(namespace, &["-C", "PREROUTING", "-j", NMI_CHAIN]).await?;
    let chain = iptables_succeeds(namespace, &["-S", NMI_CHAIN]).await?;
    Ok(NmiRules { jump, chain })
}

/// Whether `iptables -w -t nat ARGS` succeeds in `namespace` (a missing rule or chain fails).
async fn iptables_succeeds(namespace: &NetNamespace, args: &[&str]) -> Result<bool, String> {
    namespace
        .command("iptables")
        .args(["-w", "-t", "nat"])
        .args(args)
        .output()
        .await
        .map(|o| o.status.success())
        .map_err(|e| format!("running iptables in {}: {e}", namespace.name()))
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
