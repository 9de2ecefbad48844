//! What the probe prints: the HTTP exchanges it made, as data the runner asserts on.

use serde::{Deserialize, Serialize};

/// One HTTP request the probe sent and what came back (or why nothing came back).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpExchange {
    pub method: String,
    pub url: String,
    /// Response status, absent when the request failed before a response.
    pub status: Option<u16>,
    /// Response headers in arrival order (names lowercased).
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Transport error text when there was no response.
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

impl HttpExchange {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The probe's single line of output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The token request to the instance metadata endpoint.
    pub token: Option<HttpExchange>,
    /// The storage request made with that token (blob mode only).
    pub blob: Option<HttpExchange>,
    /// Why the probe stopped early (e.g. no access_token in a 200 answer).
    pub error: Option<String>,
}
