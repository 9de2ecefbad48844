//! Puts a scenario's blobs into a storage account through the Blob data plane, with the
//! runner's own Entra ID token (accounts allow no shared keys). A role granted moments ago
//! takes a while to reach Storage, so `AuthorizationPermissionMismatch` is retried for the
//! policy's propagation time.

use std::sync::Arc;

use super::arm::RetryPolicy;
use super::credential::{CredentialError, TokenSource};

/// The audience of Azure Storage tokens, the same for every account.
pub const STORAGE_AUDIENCE: &str = "https://storage.azure.com/";
/// The Blob REST version podid speaks.
const BLOB_VERSION: &str = "2021-08-06";

/// Why a blob could not be written.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("uploading blob {container}/{blob} to {account_url}: {status} {code}")]
    Refused {
        account_url: String,
        container: String,
        blob: String,
        status: u16,
        code: String,
    },
    #[error("uploading blob {container}/{blob} to {account_url}: {detail}")]
    Transport {
        account_url: String,
        container: String,
        blob: String,
        detail: String,
    },
    #[error("uploading blob to {account_url}: the URL is invalid")]
    BadUrl { account_url: String },
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// Writes blobs as the runner.
pub struct BlobUploader {
    http: reqwest::Client,
    tokens: Arc<TokenSource>,
    policy: RetryPolicy,
}

impl BlobUploader {
    pub fn new(http: reqwest::Client, tokens: Arc<TokenSource>, policy: RetryPolicy) -> Self {
        Self {
            http,
            tokens,
            policy,
        }
    }

    /// Put Blob (a block blob) `container/blob` with `content` at `account_url`.
    pub async fn upload(
        &self,
        account_url: &str,
        container: &str,
        blob: &str,
        content: &str,
    ) -> Result<(), UploadError> {
        let mut url = reqwest::Url::parse(account_url).map_err(|_| UploadError::BadUrl {
            account_url: account_url.to_string(),
        })?;
        url.path_segments_mut()
            .map_err(|_| UploadError::BadUrl {
                account_url: account_url.to_string(),
            })?
            .pop_if_empty()
            .push(container)
            .extend(blob.split('/'));
        let deadline = tokio::time::Instant::now() + self.policy.propagation_timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.tokens.token(STORAGE_AUDIENCE).await?;
            let sent = self
                .http
                .put(url.clone())
                .bearer_auth(token.expose())
                .header("x-ms-version", BLOB_VERSION)
                .header("x-ms-blob-type", "BlockBlob")
                .header("content-type", "text/plain; charset=utf-8")
                .body(content.to_string())
                .send()
                .await;
            let transport = |detail: String| UploadError::Transport {
                account_url: account_url.to_string(),
                container: container.to_string(),
                blob: blob.to_string(),
                detail,
            };
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) if attempt < self.policy.attempts => {
                    tracing::debug!(error = %e, "Blob upload failed; retrying");
                    tokio::time::sleep(self.policy.backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(transport(e.to_string())),
            };
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(());
            }
            let code = resp
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let propagating = status == 403 && code == "AuthorizationPermissionMismatch";
            let throttled = status == 429 || status >= 500;
            let now = tokio::time::Instant::now();
            if propagating && now + self.policy.propagation_poll < deadline {
                tracing::debug!(%account_url, "the runner's storage role has not reached Storage yet");
                tokio::time::sleep(self.policy.propagation_poll).await;
                continue;
            }
            if throttled && attempt < self.policy.attempts {
                tokio::time::sleep(self.policy.backoff(attempt)).await;
                continue;
            }
            return Err(UploadError::Refused {
                account_url: account_url.to_string(),
                container: container.to_string(),
                blob: blob.to_string(),
                status,
                code,
            });
        }
    }
}
