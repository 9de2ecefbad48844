//! A small Azure Resource Manager client: bearer authentication, retries of throttled and
//! failing requests (honouring `Retry-After`, bounded), long-running operations
//! (`Azure-AsyncOperation` and `Location` polling), and errors that say which operation failed
//! and what ARM answered.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::time::Instant;

use super::credential::{CredentialError, TokenSource};
use crate::provider::error::{ProviderError, error_chain};

/// How hard the client tries before giving up, and how long it waits for Azure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request when ARM throttles (429), fails (5xx) or cannot be reached.
    pub attempts: u32,
    /// The first wait when the answer names none; it doubles each attempt.
    pub first_backoff: Duration,
    /// The longest single wait, however long `Retry-After` asks for.
    pub max_wait: Duration,
    /// How long a long-running operation may run.
    pub operation_timeout: Duration,
    /// Wait between polls when ARM names none.
    pub poll_interval: Duration,
    /// How long a new principal or role assignment may take to be seen everywhere
    /// (`PrincipalNotFound`, Blob's 403 right after a role was granted).
    pub propagation_timeout: Duration,
    /// Wait between attempts while it propagates.
    pub propagation_poll: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            operation_timeout: Duration::from_secs(15 * 60),
            poll_interval: Duration::from_secs(5),
            propagation_timeout: Duration::from_secs(10 * 60),
            propagation_poll: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (1-based `attempt`) when the answer names none.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        (self.first_backoff * factor).min(self.max_wait)
    }
}

/// What ARM (or the way to it) made of an operation.
#[derive(Debug, thiserror::Error)]
pub enum ArmFailure {
    /// ARM answered with an error status.
    #[error("{status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// A long-running operation ended without success.
    #[error("the operation ended {status}: {code}: {message}")]
    OperationFailed {
        status: String,
        code: String,
        message: String,
    },
    #[error("the operation was still running after {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("the request could not be sent: {0}")]
    Transport(String),
    #[error("the answer is not JSON: {0}")]
    Malformed(String),
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// An ARM operation that failed: what was being done, and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {failure}")]
pub struct ArmError {
    pub operation: String,
    pub failure: ArmFailure,
}

impl ArmError {
    /// ARM's error code (`AuthorizationFailed`, `RoleAssignmentExists`, …), if it answered one.
    pub fn code(&self) -> Option<&str> {
        match &self.failure {
            ArmFailure::Refused { code, .. } | ArmFailure::OperationFailed { code, .. } => {
                Some(code)
            }
            _ => None,
        }
    }
}

impl From<ArmError> for ProviderError {
    fn from(e: ArmError) -> Self {
        ProviderError::new(e.operation, e.failure)
    }
}

/// How a DELETE ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It existed and is gone.
    Gone,
    /// There was nothing to delete.
    Absent,
    /// ARM accepted the deletion and finishes it in the background (not waited for).
    Accepted,
}

/// Whether to wait for a long-running DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    ForCompletion,
    /// Return once ARM has accepted it.
    UntilAccepted,
}

/// One answer, read whole.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

/// An ARM endpoint reached with one credential.
#[derive(Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    base: String,
    audience: String,
    tokens: Arc<TokenSource>,
    policy: RetryPolicy,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("base", &self.base)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// ARM at `base` (`https://management.azure.com`), authenticated with tokens for
    /// `audience` (`https://management.azure.com/`).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        audience: &str,
        tokens: Arc<TokenSource>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            audience: audience.to_string(),
            tokens,
            policy,
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The full URL of `path` (`/subscriptions/…`) at `api_version`.
    fn url(&self, path: &str, api_version: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}api-version={api_version}", self.base)
    }

    /// Reads a resource; `None` when ARM does not have it (404).
    pub async fn get(
        &self,
        path: &str,
        api_version: &str,
        operation: &str,
    ) -> Result<Option<Value>, ArmError> {
        let fail = |failure| ArmError {
            operation: operation.to_string(),
            failure,
        };
        let answer = self
            .exchange(Method::GET, &self.url(path, api_version), None)
            .await
            .map_err(fail)?;
        match answer.status {
            404 => Ok(None),
            s if (200..300).contains(&s) => Ok(Some(answer.body)),
            _ => Err(fail(refused(&answer))),
        }
    }

    /// Creates or replaces a resource and waits for it to be ready; its final state.
    pub async fn put(
        &self,
        path: &str,
        api_version: &str,
        body: &Value,
        operation: &str,
    ) -> Result<Value, ArmError> {
        self.write(Method::PUT, path, api_version, body, operation)
            .await
    }

    /// Updates a resource and waits for the update to finish; its final state.
    pub async fn patch(
        &self,
        path: &str,
        api_version: &str,
        body: &Value,
        operation: &str,
    ) -> Result<Value, ArmError> {
        self.write(Method::PATCH, path, api_version, body, operation)
            .await
    }

    async fn write(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: &Value,
        operation: &str,
    ) -> Result<Value, ArmError> {
        let fail = |failure| ArmError {
            operation: operation.to_string(),
            failure,
        };
        let url = self.url(path, api_version);
        let first = self
            .exchange(method.clone(), &url, Some(body))
            .await
            .map_err(fail)?;
        if !(200..300).contains(&first.status) {
            return Err(fail(refused(&first)));
        }
        self.complete(&url, first, true).await.map_err(fail)
    }

    /// Deletes a resource, waiting for a long-running deletion unless told not to.
    pub async fn delete(
        &self,
        path: &str,
        api_version: &str,
        operation: &str,
        wait: Wait,
    ) -> Result<Deleted, ArmError> {
        let fail = |failure| ArmError {
            operation: operation.to_string(),
            failure,
        };
        let url = self.url(path, api_version);
        let first = self
            .exchange(Method::DELETE, &url, None)
            .await
            .map_err(fail)?;
        match first.status {
            204 | 404 => return Ok(Deleted::Absent),
            s if !(200..300).contains(&s) => return Err(fail(refused(&first))),
            _ => {}
        }
        let long_running =
            first.status == 202 || header(&first.headers, "azure-asyncoperation").is_some();
        if long_running && wait == Wait::UntilAccepted {
            return Ok(Deleted::Accepted);
        }
        self.complete(&url, first, false).await.map_err(fail)?;
        Ok(Deleted::Gone)
    }

    /// Follows a long-running operation to its end: the `Azure-AsyncOperation` status URL,
    /// else a 202's `Location`. `read_back`: the resource's final state is wanted (a GET of
    /// `url` when the operation's answers do not carry it).
    async fn complete(
        &self,
        url: &str,
        first: Answer,
        read_back: bool,
    ) -> Result<Value, ArmFailure> {
        let deadline = Instant::now() + self.policy.operation_timeout;
        if let Some(status_url) = header(&first.headers, "azure-asyncoperation") {
            let mut wait = self.poll_wait(&first.headers);
            loop {
                self.sleep_until_next_poll(wait, deadline).await?;
                let poll = self.exchange(Method::GET, &status_url, None).await?;
                if !(200..300).contains(&poll.status) {
                    return Err(refused(&poll));
                }
                let status = poll.body["status"].as_str().unwrap_or_default().to_string();
                match status.to_ascii_lowercase().as_str() {
                    "succeeded" => break,
                    "failed" | "canceled" | "cancelled" => {
                        let error = &poll.body["error"];
                        return Err(ArmFailure::OperationFailed {
                            status,
                            code: error["code"].as_str().unwrap_or("Unknown").to_string(),
                            message: error["message"].as_str().unwrap_or_default().to_string(),
                        });
                    }
                    _ => wait = self.poll_wait(&poll.headers),
                }
            }
            return if read_back {
                self.read_back(url).await
            } else {
                Ok(Value::Null)
            };
        }
        if first.status == 202 {
            if let Some(location) = header(&first.headers, "location") {
                let mut wait = self.poll_wait(&first.headers);
                let done = loop {
                    self.sleep_until_next_poll(wait, deadline).await?;
                    let poll = self.exchange(Method::GET, &location, None).await?;
                    match poll.status {
                        202 => wait = self.poll_wait(&poll.headers),
                        s if (200..300).contains(&s) => break poll,
                        _ => return Err(refused(&poll)),
                    }
                };
                return match done.body {
                    Value::Null if read_back => self.read_back(url).await,
                    body => Ok(body),
                };
            }
        }
        Ok(first.body)
    }

    /// The resource at `url` after an operation finished (`null` when it is gone).
    async fn read_back(&self, url: &str) -> Result<Value, ArmFailure> {
        let answer = self.exchange(Method::GET, url, None).await?;
        match answer.status {
            404 => Ok(Value::Null),
            s if (200..300).contains(&s) => Ok(answer.body),
            _ => Err(refused(&answer)),
        }
    }

    fn poll_wait(&self, headers: &HeaderMap) -> Duration {
        retry_after(headers)
            .unwrap_or(self.policy.poll_interval)
            .min(self.policy.max_wait)
    }

    async fn sleep_until_next_poll(
        &self,
        wait: Duration,
        deadline: Instant,
    ) -> Result<(), ArmFailure> {
        if Instant::now() + wait > deadline {
            return Err(ArmFailure::Timeout(self.policy.operation_timeout));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Sends one request, retrying throttling (429), server errors (5xx) and transport
    /// failures up to the policy's attempts; any final answer is returned as it is.
    async fn exchange(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ArmFailure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.tokens.token(&self.audience).await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(token.expose());
            if let Some(b) = body {
                request = request.json(b);
            }
            let last = attempt >= self.policy.attempts;
            let resp = match request.send().await {
                Ok(resp) => resp,
                Err(e) if !last && !e.is_builder() => {
                    tracing::debug!(%method, %url, attempt, error = %e, "ARM request failed; retrying");
                    tokio::time::sleep(self.policy.backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(ArmFailure::Transport(error_chain(&e))),
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let retriable = status == 429 || (500..600).contains(&status) && status != 501;
            if retriable && !last {
                let wait = retry_after(&headers)
                    .unwrap_or_else(|| self.policy.backoff(attempt))
                    .min(self.policy.max_wait);
                tracing::debug!(%method, %url, status, attempt, wait_ms = wait.as_millis() as u64, "ARM asked to retry");
                tokio::time::sleep(wait).await;
                continue;
            }
            let text = resp
                .text()
                .await
                .map_err(|e| ArmFailure::Transport(error_chain(&e)))?;
            tracing::debug!(%method, %url, status, "ARM answered");
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(_) if !(200..300).contains(&status) => Value::String(text),
                    Err(e) => return Err(ArmFailure::Malformed(e.to_string())),
                }
            };
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
    }
}

/// ARM's error answer as a failure: `{"error":{"code","message"}}` (or the code and message
/// at the top level, or whatever text it sent).
fn refused(answer: &Answer) -> ArmFailure {
    let error = match answer.body.get("error") {
        Some(e) if e.is_object() => e,
        _ => &answer.body,
    };
    let code = error["code"].as_str().map(str::to_string);
    let message = error["message"].as_str().map(str::to_string);
    let text: String = match &answer.body {
        Value::String(s) => s.chars().take(300).collect(),
        _ => String::new(),
    };
    ArmFailure::Refused {
        status: answer.status,
        code: code.unwrap_or_else(|| reason(answer.status).to_string()),
        message: message.unwrap_or(text),
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `Retry-After` in seconds (ARM sends seconds; an HTTP date is treated as absent).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header(headers, "retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            first_backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (1..=5).map(|a| policy.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5]);
    }

    #[test]
    fn errors_name_the_operation_then_what_arm_said() {
        let answer = Answer {
            status: 403,
            headers: HeaderMap::new(),
            body: serde_json::json!({"error": {"code": "AuthorizationFailed", "message": "The client 'x' …"}}),
        };
        let e = ArmError {
            operation: "creating user-assigned identity r-1 in resource group g".into(),
            failure: refused(&answer),
        };
        assert_eq!(e.code(), Some("AuthorizationFailed"));
        assert_eq!(
            error_chain(&ProviderError::from(e)),
            "creating user-assigned identity r-1 in resource group g: 403 AuthorizationFailed: The client 'x' …"
        );
        let text = Answer {
            status: 502,
            headers: HeaderMap::new(),
            body: Value::String("bad gateway".into()),
        };
        assert_eq!(refused(&text).to_string(), "502 Bad Gateway: bad gateway");
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
