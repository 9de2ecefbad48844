//! Names of the kernel objects podid creates: namespaces carry the run id, interfaces fit in 15 bytes.

use crate::NetnsError;

/// Prefix of every namespace (and `/etc/netns` directory) podid creates.
pub const NAME_PREFIX: &str = "podid-";

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_INTERFACE_NAME: usize = 15;

/// The namespace name for `role` in run `run_id`: `podid-<run>-<role>`, so leftovers are attributable.
pub fn namespace_name(run_id: &str, role: &str) -> String {
    format!("{NAME_PREFIX}{run_id}-{role}")
}

/// The run id inside a name made by [`namespace_name`], if it is one.
pub fn run_id_of(namespace: &str) -> Option<&str> {
    let rest = namespace.strip_prefix(NAME_PREFIX)?;
    let (run, role) = rest.split_once('-')?;
    (!run.is_empty() && !role.is_empty()).then_some(run)
}

/// Checks an interface name the way the kernel will, so the error names the interface.
pub fn validate_interface_name(name: &str) -> Result<(), NetnsError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_INTERFACE_NAME {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("contains '/', ':' or whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetnsError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks a namespace name: it becomes a file name under `/run/netns` and `/etc/netns`.
pub(crate) fn validate_namespace_name(name: &str) -> Result<(), NetnsError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > 200 {
        Some("longer than 200 bytes")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if name
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        Some("contains '/', whitespace or a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetnsError::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_carry_the_run_id() {
        let name = namespace_name("ab12cd", "node-1");
        assert_eq!(name, "podid-ab12cd-node-1");
        assert_eq!(run_id_of(&name), Some("ab12cd"));
    }

    #[test]
    fn foreign_names_have_no_run_id() {
        assert_eq!(run_id_of("cni-1234"), None);
        assert_eq!(run_id_of("podid-"), None);
        assert_eq!(run_id_of("podid-abc"), None);
        assert_eq!(run_id_of("podid--x"), None);
    }

    #[test]
    fn interface_names_are_limited_to_15_bytes() {
        assert!(validate_interface_name("veth-p0123456789").is_err());
        assert!(validate_interface_name("veth-p012345678").is_ok());
        assert!(validate_interface_name("").is_err());
        assert!(validate_interface_name("a/b").is_err());
        assert!(validate_interface_name("a b").is_err());
    }

    #[test]
    fn namespace_names_must_be_file_names() {
        assert!(validate_namespace_name("podid-x-node").is_ok());
        assert!(validate_namespace_name("../etc").is_err());
        assert!(validate_namespace_name("a/b").is_err());
        assert!(validate_namespace_name("").is_err());
    }
}
