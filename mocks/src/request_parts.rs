//! Reading what the services need from request headers (host, bearer token, header values).

use axum::http::{HeaderMap, Uri, header};

/// `host[:port]` the client addressed: the `Host` header (HTTP/1.1) or the URI authority (HTTP/2).
pub(crate) fn authority(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
}

/// The addressed host without a port, lower-cased.
pub(crate) fn host_name(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let host = authority(headers, uri)?;
    let host = host.as_str();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    Some(name.to_ascii_lowercase())
}

/// `https://HOST[:PORT]` as the client addressed this server (falls back to `fallback`).
pub(crate) fn https_base(headers: &HeaderMap, uri: &Uri, fallback: std::net::SocketAddr) -> String {
    match authority(headers, uri) {
        Some(h) => format!("https://{h}"),
        None => format!("https://{fallback}"),
    }
}

/// A header's value as text, if present and valid.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Outcome of reading the `Authorization` header for bearer auth.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BearerHeader<'a> {
    Missing,
    OtherScheme,
    Token(&'a str),
}

/// Parses `Authorization: Bearer TOKEN`.
pub(crate) fn bearer(headers: &HeaderMap) -> BearerHeader<'_> {
    let Some(value) = header_str(headers, "authorization") else {
        return if headers.contains_key(header::AUTHORIZATION) {
            BearerHeader::OtherScheme
        } else {
            BearerHeader::Missing
        };
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            BearerHeader::Token(token.trim())
        }
        _ => BearerHeader::OtherScheme,
    }
}
