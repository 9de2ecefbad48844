//! Building and sending the probe's requests.

use std::time::Instant;

use reqwest::{Client, Method, RequestBuilder};

use crate::report::HttpExchange;

/// The identity-selecting query parameters, in the order SDKs and adal send them.
#[derive(Debug, Clone, Default)]
pub struct TokenQuery {
    pub api_version: Option<String>,
    pub resource: Option<String>,
    pub client_id: Option<String>,
    pub mi_res_id: Option<String>,
    pub msi_res_id: Option<String>,
    pub object_id: Option<String>,
    /// Extra parameters, appended as given.
    pub extra: Vec<(String, String)>,
}

impl TokenQuery {
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        let named = [
            ("api-version", &self.api_version),
            ("resource", &self.resource),
            ("client_id", &self.client_id),
            ("mi_res_id", &self.mi_res_id),
            ("msi_res_id", &self.msi_res_id),
            ("object_id", &self.object_id),
        ];
        for (k, v) in named {
            if let Some(v) = v {
                out.push((k, v.as_str()));
            }
        }
        out.extend(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        out
    }
}

/// Builds `<endpoint><path>?<query>` with proper percent-encoding.
pub fn token_url(endpoint: &str, path: &str, query: &TokenQuery) -> Result<url::Url, String> {
    let mut url = url::Url::parse(endpoint)
        .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
        .join(path)
        .map_err(|e| format!("bad path {path}: {e}"))?;
    {
        let pairs = query.pairs();
        if !pairs.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
    }
    Ok(url)
}

/// Sends a request and records the exchange; transport errors become data, not failures.
pub async fn exchange(request: RequestBuilder, method: Method, url: &str) -> HttpExchange {
    let started = Instant::now();
    let mut out = HttpExchange {
        method: method.to_string(),
        url: url.to_string(),
        ..HttpExchange::default()
    };
    match request.send().await {
        Ok(response) => {
            out.status = Some(response.status().as_u16());
            out.headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).to_string(),
                    )
                })
                .collect();
            match response.text().await {
                Ok(body) => out.body = body,
                Err(e) => out.error = Some(format!("reading the body failed: {e}")),
            }
        }
        Err(e) => out.error = Some(error_chain(&e)),
    }
    out.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A client for the metadata endpoint: plain HTTP, never a proxy (as SDKs do for IMDS), sending
/// from `source` when given. The metadata endpoint is on the node, so a connection that takes
/// seconds to open will not open.
pub fn metadata_client(source: Option<std::net::IpAddr>) -> Result<Client, String> {
    Client::builder()
        .no_proxy()
        .local_address(source)
        .connect_timeout(std::time::Duration::from_secs(3))
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// A client for storage that trusts only the given CA bundle (the run's mock cloud CA), or the
/// platform's roots when none is given (real Azure).
pub fn storage_client(ca_pem: Option<&[u8]>) -> Result<Client, String> {
    let mut builder = Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(60));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("reading the CA bundle: {e}"))?;
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}
