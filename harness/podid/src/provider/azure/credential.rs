//! Azure credentials taken from the environment the way the Azure SDKs take them: workload
//! identity (a federated token file), else a client secret, else the Azure CLI's login. Tokens
//! are cached per resource until shortly before they expire. No token or secret ever reaches a
//! log line, an error or a `Debug` rendering.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::provider::error::error_chain;

/// A token or secret: usable, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Workload identity federation: a client assertion read from a file the platform keeps
    /// fresh (`AZURE_FEDERATED_TOKEN_FILE`), exchanged at AAD (client-assertion grant).
    WorkloadIdentity {
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    },
    /// An application's client secret (`AZURE_CLIENT_SECRET`).
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    /// Whoever is logged in to the Azure CLI (`az account get-access-token`).
    AzureCli {
        /// The `az` program (a path, or a name looked up on `PATH`).
        program: PathBuf,
        /// `--tenant`, when `AZURE_TENANT_ID` is set.
        tenant_id: Option<String>,
    },
}

impl CredentialSource {
    /// The credential this process's environment describes.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The credential the variables `var` reads describe (empty values count as unset), in the
    /// SDKs' order: workload identity needs `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_FEDERATED_TOKEN_FILE`; a client secret needs `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`; otherwise the Azure CLI.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let tenant = get("AZURE_TENANT_ID");
        let client = get("AZURE_CLIENT_ID");
        if let (Some(tenant_id), Some(client_id)) = (tenant.clone(), client) {
            if let Some(file) = get("AZURE_FEDERATED_TOKEN_FILE") {
                return Self::WorkloadIdentity {
                    tenant_id,
                    client_id,
                    token_file: PathBuf::from(file),
                };
            }
            if let Some(secret) = get("AZURE_CLIENT_SECRET") {
                return Self::ClientSecret {
                    tenant_id,
                    client_id,
                    secret: Secret::new(secret),
                };
            }
        }
        Self::AzureCli {
            program: PathBuf::from("az"),
            tenant_id: tenant,
        }
    }

    /// What run headers say about the credential (no secret).
    pub fn describe(&self) -> String {
        match self {
            Self::WorkloadIdentity { client_id, .. } => {
                format!("workload identity (client {client_id})")
            }
            Self::ClientSecret { client_id, .. } => format!("client secret (client {client_id})"),
            Self::AzureCli { .. } => "Azure CLI login".into(),
        }
    }

    /// The tenant the credential is for, when it names one.
    pub fn tenant_id(&self) -> Option<&str> {
        match self {
            Self::WorkloadIdentity { tenant_id, .. } | Self::ClientSecret { tenant_id, .. } => {
                Some(tenant_id)
            }
            Self::AzureCli { tenant_id, .. } => tenant_id.as_deref(),
        }
    }
}

/// The arguments of the Azure CLI call that yields a token for `resource`.
pub fn az_arguments(resource: &str, tenant_id: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = ["account", "get-access-token", "--resource", resource]
        .into_iter()
        .map(String::from)
        .collect();
    if let Some(tenant) = tenant_id {
        args.extend(["--tenant".to_string(), tenant.to_string()]);
    }
    args.extend(["--output".to_string(), "json".to_string()]);
    args
}

/// Why no token could be had. Carries what was asked of whom, never the secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("reading the federated token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("requesting a token for {resource} from {authority} as client {client_id}: {detail}")]
    Aad {
        resource: String,
        authority: String,
        client_id: String,
        detail: String,
    },
    #[error(
        "the Azure CLI (`{program}`) could not be run: {source}; install it and run `az login`, or set AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_FEDERATED_TOKEN_FILE or AZURE_CLIENT_SECRET"
    )]
    AzMissing {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    AzFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed no usable token: {detail}")]
    AzOutput { command: String, detail: String },
}

/// A token and when it stops working.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_at: SystemTime,
}

impl AccessToken {
    /// Whether the token is still good for a while: past 90 % of its remaining life, or within
    /// five minutes of its end, it is fetched again.
    fn fresh(&self, fetched_at: SystemTime) -> bool {
        let life = self
            .expires_at
            .duration_since(fetched_at)
            .unwrap_or_default();
        let margin = (life / 10).max(Duration::from_secs(300)).min(life / 2);
        SystemTime::now() + margin < self.expires_at
    }
}

/// The claims of a token podid needs: which tenant issued it and whom it stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TokenClaims {
    #[serde(default)]
    pub tid: String,
    #[serde(default)]
    pub oid: String,
}

impl TokenClaims {
    /// The claims of a JWT, read without verifying it (the token is our own, fresh from AAD).
    pub fn of(token: &Secret) -> Option<Self> {
        let payload = token.expose().split('.').nth(1)?;
        let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Hands out tokens for resources (ARM, Storage), cached until near expiry.
pub struct TokenSource {
    source: CredentialSource,
    authority: String,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<HashMap<String, (AccessToken, SystemTime)>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("source", &self.source)
            .field("authority", &self.authority)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct AadAnswer {
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AzAnswer {
    access_token: Option<String>,
    #[serde(default, rename = "expires_on")]
    expires_on: Option<serde_json::Value>,
    #[serde(default, rename = "expiresOn")]
    expires_on_local: Option<String>,
}

/// A number that may come as a JSON number or a string of digits.
fn seconds(v: &serde_json::Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

impl TokenSource {
    /// Tokens from `source`; AAD is reached at `authority` (`https://login.microsoftonline.com`).
    pub fn new(source: CredentialSource, authority: &str, http: reqwest::Client) -> Self {
        Self {
            source,
            authority: authority.trim_end_matches('/').to_string(),
            http,
            cache: tokio::sync::Mutex::default(),
        }
    }

    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// A token for `resource` (`https://management.azure.com/`), from the cache when it is
    /// still fresh.
    pub async fn token(&self, resource: &str) -> Result<Secret, CredentialError> {
        let mut cache = self.cache.lock().await;
        if let Some((token, fetched)) = cache.get(resource) {
            if token.fresh(*fetched) {
                return Ok(token.token.clone());
            }
        }
        let fetched = SystemTime::now();
        let token = self.fetch(resource).await?;
        let value = token.token.clone();
        cache.insert(resource.to_string(), (token, fetched));
        Ok(value)
    }

    async fn fetch(&self, resource: &str) -> Result<AccessToken, CredentialError> {
        match &self.source {
            CredentialSource::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let assertion = tokio::fs::read_to_string(token_file)
                    .await
                    .map_err(|source| CredentialError::TokenFile {
                        path: token_file.clone(),
                        source,
                    })?;
                let form = [
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.trim()),
                ];
                self.client_credentials(tenant_id, client_id, resource, &form)
                    .await
            }
            CredentialSource::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => {
                let form = [("client_secret", secret.expose())];
                self.client_credentials(tenant_id, client_id, resource, &form)
                    .await
            }
            CredentialSource::AzureCli { program, tenant_id } => {
                az_token(program, resource, tenant_id.as_deref()).await
            }
        }
    }

    /// The client-credentials grant at `{authority}/{tenant}/oauth2/v2.0/token`, with the
    /// client's proof in `proof` (a secret or an assertion).
    async fn client_credentials(
        &self,
        tenant_id: &str,
        client_id: &str,
        resource: &str,
        proof: &[(&str, &str)],
    ) -> Result<AccessToken, CredentialError> {
        let failed = |detail: String| CredentialError::Aad {
            resource: resource.to_string(),
            authority: format!("{}/{tenant_id}", self.authority),
            client_id: client_id.to_string(),
            detail,
        };
        let scope = format!("{}/.default", resource.trim_end_matches('/'));
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", &scope),
        ];
        form.extend_from_slice(proof);
        let url = format!("{}/{tenant_id}/oauth2/v2.0/token", self.authority);
        let resp = self.http.post(&url).form(&form).send().await.map_err(|e| {
            failed(format!(
                "sending the request failed: {}",
                error_chain(&e.without_url())
            ))
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            failed(format!(
                "reading the answer failed: {}",
                error_chain(&e.without_url())
            ))
        })?;
        let answer: AadAnswer = serde_json::from_str(&text)
            .map_err(|_| failed(format!("{status}: the answer is not JSON")))?;
        match answer.access_token {
            Some(token) if status.is_success() => {
                let life = answer.expires_in.as_ref().and_then(seconds).unwrap_or(300);
                Ok(AccessToken {
                    token: Secret::new(token),
                    expires_at: SystemTime::now() + Duration::from_secs(life),
                })
            }
            _ => {
                let description = answer.error_description.unwrap_or_default();
                let first_line = description.lines().next().unwrap_or_default();
                Err(failed(format!(
                    "{} {}: {first_line}",
                    status.as_u16(),
                    answer.error.unwrap_or_else(|| "error".into())
                )))
            }
        }
    }
}

/// How long `az` may take to answer.
const AZ_TIMEOUT: Duration = Duration::from_secs(60);

/// A token from the Azure CLI's login.
async fn az_token(
    program: &std::path::Path,
    resource: &str,
    tenant_id: Option<&str>,
) -> Result<AccessToken, CredentialError> {
    let args = az_arguments(resource, tenant_id);
    let command = format!("{} {}", program.display(), args.join(" "));
    let run = tokio::process::Command::new(program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(AZ_TIMEOUT, run).await {
        Err(_) => {
            return Err(CredentialError::AzFailed {
                command,
                status: format!("no answer within {}s", AZ_TIMEOUT.as_secs()),
                stderr: String::new(),
            });
        }
        Ok(Err(source)) => {
            return Err(CredentialError::AzMissing {
                program: program.display().to_string(),
                source,
            });
        }
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .collect();
        return Err(CredentialError::AzFailed {
            command,
            status: output.status.to_string(),
            stderr: stderr.join(" / "),
        });
    }
    parse_az_output(&output.stdout).map_err(|detail| CredentialError::AzOutput { command, detail })
}

/// The token in `az account get-access-token --output json`'s answer: `accessToken` and
/// `expires_on` (POSIX seconds, Azure CLI 2.54 and later) or `expiresOn` (local time).
pub fn parse_az_output(stdout: &[u8]) -> Result<AccessToken, String> {
    let answer: AzAnswer =
        serde_json::from_slice(stdout).map_err(|e| format!("the output is not JSON ({e})"))?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "it has no `accessToken`".to_string())?;
    let expires_at = match (
        answer.expires_on.as_ref().and_then(seconds),
        answer.expires_on_local,
    ) {
        (Some(posix), _) => UNIX_EPOCH + Duration::from_secs(posix),
        (None, Some(local)) => {
            local_time(&local).ok_or_else(|| format!("its `expiresOn` ({local}) is not a time"))?
        }
        (None, None) => SystemTime::now() + Duration::from_secs(300),
    };
    Ok(AccessToken {
        token: Secret::new(token),
        expires_at,
    })
}

/// `2023-10-31 14:40:41.000000` in the machine's time zone.
fn local_time(text: &str) -> Option<SystemTime> {
    use chrono::TimeZone;
    let naive = chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let local = chrono::Local.from_local_datetime(&naive).earliest()?;
    Some(SystemTime::from(local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "33333333-0000-0000-0000-000000000001";

    #[test]
    fn a_federated_token_file_is_preferred_over_a_secret() {
        let source = CredentialSource::from_vars(vars(&[
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_CLIENT_SECRET", "s3cr3t"),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                "/var/run/secrets/azure/tokens/azure-identity-token",
            ),
        ]));
        assert_eq!(
            source,
            CredentialSource::WorkloadIdentity {
                tenant_id: TENANT.into(),
                client_id: CLIENT.into(),
                token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
            }
        );
        assert_eq!(
            source.describe(),
            format!("workload identity (client {CLIENT})")
        );
    }

    #[test]
    fn a_secret_is_used_without_a_token_file_and_never_shown() {
        let source = CredentialSource::from_vars(vars(&[
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_CLIENT_ID", CLIENT),
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
            ("AZURE_FEDERATED_TOKEN_FILE", "  "),
        ]));
        assert!(matches!(
            &source,
            CredentialSource::ClientSecret { secret, .. } if secret.expose() == "s3cr3t-value"
        ));
        let shown = format!("{source:?} {}", source.describe());
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn without_a_client_the_azure_cli_is_asked() {
        for pairs in [
            vec![],
            vec![("AZURE_TENANT_ID", TENANT), ("AZURE_CLIENT_SECRET", "x")],
            vec![
                ("AZURE_TENANT_ID", TENANT),
                ("AZURE_CLIENT_ID", CLIENT),
                ("AZURE_CLIENT_SECRET", ""),
            ],
        ] {
            let source = CredentialSource::from_vars(vars(&pairs));
            assert!(
                matches!(&source, CredentialSource::AzureCli { program, .. } if program == std::path::Path::new("az")),
                "{pairs:?}: {source:?}"
            );
        }
        let source = CredentialSource::from_vars(vars(&[("AZURE_TENANT_ID", TENANT)]));
        assert_eq!(source.tenant_id(), Some(TENANT));
        assert_eq!(
            az_arguments("https://management.azure.com/", Some(TENANT)).join(" "),
            format!(
                "account get-access-token --resource https://management.azure.com/ --tenant {TENANT} --output json"
            )
        );
        assert_eq!(
            az_arguments("https://storage.azure.com/", None).join(" "),
            "account get-access-token --resource https://storage.azure.com/ --output json"
        );
    }

    #[test]
    fn the_cli_answer_gives_the_token_and_its_end() {
        let t = parse_az_output(br#"{"accessToken":"eyJ0.x.y","expiresOn":"2030-01-01 10:00:00.000000","expires_on":1893492000,"subscription":"s","tenant":"t","tokenType":"Bearer"}"#).unwrap();
        assert_eq!(t.token.expose(), "eyJ0.x.y");
        assert_eq!(
            t.expires_at,
            UNIX_EPOCH + Duration::from_secs(1_893_492_000)
        );
        let older =
            parse_az_output(br#"{"accessToken":"a.b.c","expiresOn":"2030-01-01 10:00:00.000000"}"#)
                .unwrap();
        assert!(older.expires_at > SystemTime::now());
        assert!(parse_az_output(b"not json").is_err());
        assert!(parse_az_output(br#"{"expires_on":1}"#).is_err());
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"tid":"t1","oid":"o1","aud":"x"}"#);
        let token = Secret::new(format!("eyJhbGciOiJub25lIn0.{payload}.sig"));
        assert_eq!(
            TokenClaims::of(&token),
            Some(TokenClaims {
                tid: "t1".into(),
                oid: "o1".into()
            })
        );
        assert_eq!(TokenClaims::of(&Secret::new("opaque")), None);
    }

    /// A stand-in `az` that records its arguments and prints what the real one prints.
    fn fake_az(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("az");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$@\" > \"{}/args\"\n{body}\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn scratch_dir() -> PathBuf {
        std::env::temp_dir().join(format!("podid-az-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn the_cli_is_run_with_the_resource_and_its_token_cached() {
        let dir = scratch_dir();
        let az = fake_az(
            &dir,
            r#"echo '{"accessToken":"cli.token.value","expires_on":4102444800,"tokenType":"Bearer"}'"#,
        );
        let source = TokenSource::new(
            CredentialSource::AzureCli {
                program: az,
                tenant_id: Some(TENANT.into()),
            },
            "https://login.microsoftonline.com",
            reqwest::Client::new(),
        );
        let token = source.token("https://management.azure.com/").await.unwrap();
        assert_eq!(token.expose(), "cli.token.value");
        let args = std::fs::read_to_string(dir.join("args")).unwrap();
        assert_eq!(
            args.trim(),
            az_arguments("https://management.azure.com/", Some(TENANT)).join(" ")
        );
        std::fs::remove_file(dir.join("args")).unwrap();
        source.token("https://management.azure.com/").await.unwrap();
        assert!(
            !dir.join("args").exists(),
            "a fresh token comes from the cache"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_cli_that_fails_or_is_missing_says_what_to_do() {
        let dir = scratch_dir();
        let az = fake_az(
            &dir,
            "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
        );
        let source = TokenSource::new(
            CredentialSource::AzureCli {
                program: az,
                tenant_id: None,
            },
            "https://login.microsoftonline.com",
            reqwest::Client::new(),
        );
        let err = source
            .token("https://management.azure.com/")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "account get-access-token --resource https://management.azure.com/ --output json"
            ),
            "{err}"
        );
        assert!(err.contains("Please run 'az login'"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = TokenSource::new(
            CredentialSource::AzureCli {
                program: dir.join("no-az-here"),
                tenant_id: None,
            },
            "https://login.microsoftonline.com",
            reqwest::Client::new(),
        );
        let err = missing
            .token("https://management.azure.com/")
            .await
            .unwrap_err();
        assert!(matches!(err, CredentialError::AzMissing { .. }));
        assert!(err.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"));
    }

    #[tokio::test]
    async fn workload_identity_sends_the_file_as_a_client_assertion() {
        use wiremock::matchers::{body_string_contains, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let aad = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
            .and(body_string_contains("client_assertion=federated.jwt.value"))
            .and(body_string_contains("jwt-bearer"))
            .and(body_string_contains(
                "scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "token_type": "Bearer", "expires_in": 3599, "access_token": "aad.token.value"
            })))
            .expect(1)
            .mount(&aad)
            .await;
        let dir = scratch_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "federated.jwt.value\n").unwrap();
        let source = TokenSource::new(
            CredentialSource::WorkloadIdentity {
                tenant_id: TENANT.into(),
                client_id: CLIENT.into(),
                token_file: file,
            },
            &aad.uri(),
            reqwest::Client::new(),
        );
        let token = source.token("https://management.azure.com/").await.unwrap();
        assert_eq!(token.expose(), "aad.token.value");
        assert_eq!(format!("{token:?}"), "<redacted>");
        std::fs::remove_dir_all(&dir).unwrap();
        let err = source
            .token("https://storage.azure.com/")
            .await
            .unwrap_err();
        assert!(matches!(err, CredentialError::TokenFile { .. }), "{err}");
    }
}
