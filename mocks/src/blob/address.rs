//! Where a Blob request points: account (from the host name or, for IP hosts, the first path
//! segment), container and blob.

use percent_encoding::percent_decode_str;

use crate::hosts::BLOB_HOST_SUFFIX;

/// Parsed target of a Blob request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobAddress {
    /// Storage account name (lower case).
    pub account: String,
    /// Container, if the path names one.
    pub container: Option<String>,
    /// Blob name (may contain `/`), if the path names one.
    pub blob: Option<String>,
}

/// Resolves `host` (without port) and the URL `path`; `None` if no account can be found.
pub fn parse(host: Option<&str>, path: &str) -> Option<BlobAddress> {
    let decoded: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let host_account = host
        .and_then(|h| h.strip_suffix(BLOB_HOST_SUFFIX))
        .filter(|a| !a.is_empty() && !a.contains('.'));
    let (account, rest): (String, &[String]) = match host_account {
        Some(a) => (a.to_ascii_lowercase(), &decoded[..]),
        None => {
            let (first, rest) = decoded.split_first()?;
            if first.is_empty() {
                return None;
            }
            (first.to_ascii_lowercase(), rest)
        }
    };
    let container = rest.first().filter(|c| !c.is_empty()).cloned();
    let blob = if rest.len() > 1 {
        Some(rest[1..].join("/")).filter(|b| !b.is_empty())
    } else {
        None
    };
    let blob = container.as_ref().and(blob);
    Some(BlobAddress {
        account,
        container,
        blob,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_style_and_path_style() {
        let a = parse(
            Some("acct.blob.core.windows.net"),
            "/data/dir/file%20one.txt",
        )
        .unwrap();
        assert_eq!(a.account, "acct");
        assert_eq!(a.container.as_deref(), Some("data"));
        assert_eq!(a.blob.as_deref(), Some("dir/file one.txt"));
        let a = parse(Some("127.0.0.1"), "/acct/data").unwrap();
        assert_eq!(
            (a.account.as_str(), a.container.as_deref(), a.blob),
            ("acct", Some("data"), None)
        );
        let a = parse(Some("acct.blob.core.windows.net"), "/").unwrap();
        assert_eq!((a.container, a.blob), (None, None));
        assert!(parse(Some("127.0.0.1"), "/").is_none());
    }
}
