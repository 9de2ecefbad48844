//! Which Debian mirror debootstrap uses: the one this machine's apt already uses for the suite,
//! so image builds go wherever package installs already go (proxies, internal mirrors, pinned
//! snapshots) and nothing is hard-coded.

use std::path::{Path, PathBuf};

use crate::error::{KindError, Result};

/// Environment variable naming a mirror explicitly (wins over apt's sources).
pub const MIRROR_ENV: &str = "PODID_DEBIAN_MIRROR";

/// A Debian archive URL such as `http://deb.debian.org/debian`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianMirror(pub String);

impl DebianMirror {
    /// The mirror for `suite`: [`MIRROR_ENV`] if set, else the first apt source (one-line
    /// `.list` or deb822 `.sources`) that serves `suite` itself (not `-updates`/`-security`).
    pub fn detect(suite: &str) -> Result<DebianMirror> {
        if let Some(url) = std::env::var_os(MIRROR_ENV) {
            let url = url.to_string_lossy().trim().to_owned();
            if !url.is_empty() {
                return Ok(DebianMirror(url));
            }
        }
        let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
        let dir = Path::new("/etc/apt/sources.list.d");
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            more.sort();
            files.extend(more);
        }
        for file in &files {
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            let name = file.to_string_lossy();
            let found = if name.ends_with(".sources") {
                from_deb822(&text, suite)
            } else if name.ends_with(".list") {
                from_one_line(&text, suite)
            } else {
                None
            };
            if let Some(url) = found {
                return Ok(DebianMirror(url));
            }
        }
        Err(KindError::invalid(
            format!("finding a Debian mirror for `{suite}`"),
            format!(
                "no apt source in /etc/apt/sources.list or /etc/apt/sources.list.d serves `{suite}`; \
                 set {MIRROR_ENV} to a Debian archive URL"
            ),
        ))
    }
}

/// The first `deb` line of a one-line-style sources file serving `suite`.
pub(crate) fn from_one_line(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let mut words = line.split_whitespace().peekable();
        if words.next()? != "deb" {
            return None;
        }
        // Skip an options block: `[arch=amd64 signed-by=…]`, possibly spread over words.
        if words.peek()?.starts_with('[') {
            for w in words.by_ref() {
                if w.ends_with(']') {
                    break;
                }
            }
        }
        let url = words.next()?;
        let dist = words.next()?;
        (dist == suite).then(|| url.trim_end_matches('/').to_owned())
    })
}

/// The first stanza of a deb822 `.sources` file with type `deb` serving `suite`.
pub(crate) fn from_deb822(text: &str, suite: &str) -> Option<String> {
    let mut stanza: Vec<(String, String)> = Vec::new();
    let mut stanzas = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !stanza.is_empty() {
                stanzas.push(std::mem::take(&mut stanza));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = stanza.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            stanza.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !stanza.is_empty() {
        stanzas.push(stanza);
    }
    stanzas.into_iter().find_map(|fields| {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let enabled = get("enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
        let is_deb = get("types")?.split_whitespace().any(|t| t == "deb");
        let serves = get("suites")?.split_whitespace().any(|s| s == suite);
        if !(enabled && is_deb && serves) {
            return None;
        }
        get("uris")?
            .split_whitespace()
            .next()
            .map(|u| u.trim_end_matches('/').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_picks_the_stanza_serving_the_suite() {
        let text = "Types: deb\n# a comment\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\
                    Components: main\n\nTypes: deb deb-src\nURIs: http://mirror.example/debian/\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            from_deb822(text, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(from_deb822(text, "trixie"), None);
    }

    #[test]
    fn deb822_skips_disabled_and_source_only_stanzas() {
        let text = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n\
                    Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n\
                    Types: deb\nURIs: http://on.example/debian\nSuites: bookworm\n";
        assert_eq!(
            from_deb822(text, "bookworm").as_deref(),
            Some("http://on.example/debian")
        );
    }

    #[test]
    fn one_line_sources_with_options_and_comments() {
        let text = "# deb http://old.example/debian bookworm main\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            from_one_line(text, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            from_one_line("deb http://x/debian bookworm-updates main\n", "bookworm"),
            None
        );
    }
}
