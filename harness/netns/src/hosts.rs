//! The per-namespace hosts file that `ip netns exec` mounts over `/etc/hosts`.

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;

use crate::{NetNamespace, NetnsError};

impl NetNamespace {
    /// Writes `/etc/netns/NAME/hosts` with localhost plus `entries`, so programs started with
    /// [`NetNamespace::exec_command`] resolve the mock cloud's host names.
    pub fn write_hosts(&self, entries: &[(IpAddr, String)]) -> Result<(), NetnsError> {
        let dir = self.etc_dir();
        fs::create_dir_all(&dir)
            .map_err(|e| NetnsError::io(format!("creating {}", dir.display()), self.name(), e))?;
        let path = dir.join("hosts");
        fs::write(&path, hosts_file_contents(entries))
            .map_err(|e| NetnsError::io(format!("writing {}", path.display()), self.name(), e))
    }
}

/// The text of a hosts file: localhost lines first, then one `IP NAME` line per entry.
pub fn hosts_file_contents(entries: &[(IpAddr, String)]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (ip, name) in entries {
        let _ = writeln!(text, "{ip}\t{name}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lists_localhost_then_entries() {
        let text = hosts_file_contents(&[
            (
                "10.0.0.5".parse().unwrap(),
                "login.microsoftonline.com".into(),
            ),
            (
                "10.0.0.6".parse().unwrap(),
                "acct.blob.core.windows.net".into(),
            ),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[2], "10.0.0.5\tlogin.microsoftonline.com");
        assert_eq!(lines[3], "10.0.0.6\tacct.blob.core.windows.net");
        assert_eq!(lines.len(), 4);
    }
}
