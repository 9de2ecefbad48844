//! Removes credentials from text before it is shown or stored.
//!
//! Scenario output routinely contains access tokens, client secrets and assertion JWTs; reports
//! are uploaded as CI artifacts, so every free-text field passes through [`redact`].

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

use crate::model::{Attachment, Failure, RunReport, ScenarioReport, StepReport};

/// Replacement for a JSON Web Token.
const JWT_MARK: &str = "[REDACTED-JWT]";
/// Replacement for any other secret value.
const SECRET_MARK: &str = "[REDACTED]";
/// Replacement for a whole PEM private-key block.
const PRIVATE_KEY_MARK: &str = "[REDACTED-PRIVATE-KEY]";

/// Parameter and field names whose values are credentials.
const SECRET_KEYS: &str = "client_secret|clientSecret|access_token|accessToken|refresh_token|refreshToken|id_token|client_assertion|clientAssertion|password";

/// A PEM private key, including a block cut off before its END line.
static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
    )
    .expect("private-key pattern is valid")
});

/// `"key": "value"` in JSON; the value may contain escapes.
static JSON_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r#"("(?:{SECRET_KEYS})"\s*:\s*")(?:[^"\\]|\\.)*"#))
        .expect("JSON secret pattern is valid")
});

/// `\"key\":\"value\"`: JSON quoted inside another string, where `\"` ends the value.
static ESCAPED_JSON_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"(\\"(?:{SECRET_KEYS})\\"\s*:\s*\\")(?:[^"\\]|\\[^"])*"#
    ))
    .expect("escaped JSON secret pattern is valid")
});

/// `key=value` in forms and query strings, and `key: value` in YAML or logs.
static FORM_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r#"\b((?:{SECRET_KEYS})\s*[=:]\s*"?)(?:\[REDACTED\]|[^\s&"',;}}\]]+)"#
    ))
    .expect("form secret pattern is valid")
});

/// An HTTP bearer credential (RFC 6750 token characters).
static BEARER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*").expect("bearer pattern is valid")
});

/// Three base64url segments whose first one starts like a JSON header (`{"` encodes to `eyJ`).
static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"eyJ[A-Za-z0-9_=-]*\.[A-Za-z0-9_=-]*\.[A-Za-z0-9_=-]*")
        .expect("JWT pattern is valid")
});

/// Replaces JWTs, bearer credentials, secret-valued fields and PEM private keys with markers.
///
/// Idempotent, and never panics; applied by every renderer and usable on logs.
pub fn redact(text: &str) -> String {
    if !might_hold_secret(text) {
        return text.to_owned();
    }
    let text = PRIVATE_KEY.replace_all(text, PRIVATE_KEY_MARK);
    let text = replace_keeping_prefix(&ESCAPED_JSON_SECRET, text, "");
    let text = replace_keeping_prefix(&JSON_SECRET, text, "");
    let text = replace_keeping_prefix(&FORM_SECRET, text, "");
    // A single space after the scheme, however much whitespace there was.
    let text = replace_keeping_prefix(&BEARER, text, " ");
    let text = match JWT.replace_all(&text, JWT_MARK) {
        Cow::Borrowed(_) => text,
        Cow::Owned(replaced) => Cow::Owned(replaced),
    };
    text.into_owned()
}

/// Cheap check that skips the regex passes for the common case of plain text.
fn might_hold_secret(text: &str) -> bool {
    const MARKERS: [&str; 7] = [
        "eyJ",
        "PRIVATE KEY",
        "ecret",
        "oken",
        "assertion",
        "Assertion",
        "password",
    ];
    MARKERS.iter().any(|marker| text.contains(marker))
        || text
            .as_bytes()
            .windows(b"bearer".len())
            .any(|window| window.eq_ignore_ascii_case(b"bearer"))
}

/// Replaces each match with its first capture group (the key or scheme), `separator` and the
/// marker.
fn replace_keeping_prefix<'t>(
    pattern: &Regex,
    text: Cow<'t, str>,
    separator: &str,
) -> Cow<'t, str> {
    let replaced = pattern.replace_all(&text, |captures: &regex::Captures<'_>| {
        let prefix = captures.get(1).map_or("", |m| m.as_str());
        format!("{prefix}{separator}{SECRET_MARK}")
    });
    match replaced {
        Cow::Borrowed(_) => text,
        Cow::Owned(replaced) => Cow::Owned(replaced),
    }
}

impl RunReport {
    /// A copy with [`redact`] applied to every string, which is what the renderers show.
    pub fn redacted(&self) -> RunReport {
        RunReport {
            run_id: redact(&self.run_id),
            provider: redact(&self.provider),
            started_at: self.started_at,
            duration: self.duration,
            environment: self
                .environment
                .iter()
                .map(|(key, value)| (redact(key), redact(value)))
                .collect(),
            scenarios: self.scenarios.iter().map(redact_scenario).collect(),
        }
    }
}

fn redact_scenario(scenario: &ScenarioReport) -> ScenarioReport {
    ScenarioReport {
        name: redact(&scenario.name),
        file: redact(&scenario.file),
        mode: redact(&scenario.mode),
        tags: scenario.tags.iter().map(|tag| redact(tag)).collect(),
        status: scenario.status,
        duration: scenario.duration,
        steps: scenario.steps.iter().map(redact_step).collect(),
        attachments: scenario
            .attachments
            .iter()
            .map(|attachment| Attachment {
                name: redact(&attachment.name),
                path: redact_path(&attachment.path),
            })
            .collect(),
        skip_reason: scenario.skip_reason.as_deref().map(redact),
    }
}

fn redact_step(step: &StepReport) -> StepReport {
    StepReport {
        index: step.index,
        name: redact(&step.name),
        kind: redact(&step.kind),
        status: step.status,
        duration: step.duration,
        failures: step
            .failures
            .iter()
            .map(|failure| Failure {
                expectation: redact(&failure.expectation),
                expected: redact(&failure.expected),
                actual: redact(&failure.actual),
                message: redact(&failure.message),
            })
            .collect(),
        output: step.output.as_deref().map(redact),
    }
}

/// Paths are kept as they are unless they contain a secret, which would only survive lossily.
fn redact_path(path: &std::path::Path) -> PathBuf {
    let text = path.to_string_lossy();
    let redacted = redact(&text);
    if redacted == text {
        path.to_path_buf()
    } else {
        PathBuf::from(redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT_SAMPLE: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwczovL3N0b3JhZ2UuYXp1cmUuY29tLyJ9.c2lnbmF0dXJlLWJ5dGVz";

    #[test]
    fn plain_text_is_unchanged() {
        let text = "status: expected 403, got 200 (pod default/app, identity id1)";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn jwt_is_replaced_wherever_it_appears() {
        let text = format!("token={JWT_SAMPLE}; again:{JWT_SAMPLE}.");
        let out = redact(&text);
        assert!(!out.contains("eyJ"), "{out}");
        assert_eq!(out.matches(JWT_MARK).count(), 2, "{out}");
    }

    #[test]
    fn unsigned_jwt_with_empty_signature_is_replaced() {
        let out = redact("alg none: eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. done");
        assert_eq!(out, "alg none: [REDACTED-JWT] done");
    }

    #[test]
    fn bearer_credential_keeps_scheme() {
        assert_eq!(
            redact("Authorization: Bearer abc.def-ghi=="),
            "Authorization: Bearer [REDACTED]"
        );
        assert_eq!(
            redact("authorization: bearer   xyz"),
            "authorization: bearer [REDACTED]"
        );
    }

    #[test]
    fn form_encoded_secrets_are_replaced_and_other_fields_kept() {
        let out = redact(
            "grant_type=client_credentials&client_id=abc&client_secret=s3cr%2Ft&client_assertion=xyz&scope=x",
        );
        assert_eq!(
            out,
            "grant_type=client_credentials&client_id=abc&client_secret=[REDACTED]&client_assertion=[REDACTED]&scope=x"
        );
    }

    #[test]
    fn json_token_fields_are_replaced() {
        let out = redact(
            r#"{"access_token": "opaque-token", "refresh_token":"r1", "expires_in": "3599", "client_secret":"p\"w"}"#,
        );
        assert_eq!(
            out,
            r#"{"access_token": "[REDACTED]", "refresh_token":"[REDACTED]", "expires_in": "3599", "client_secret":"[REDACTED]"}"#
        );
    }

    #[test]
    fn json_embedded_in_a_string_is_replaced() {
        let out = redact(r#"body: "{\"access_token\":\"opaque\",\"token_type\":\"Bearer\"}""#);
        assert_eq!(
            out,
            r#"body: "{\"access_token\":\"[REDACTED]\",\"token_type\":\"Bearer\"}""#
        );
    }

    #[test]
    fn yaml_style_secret_is_replaced() {
        assert_eq!(
            redact("clientSecret: hunter2\n"),
            "clientSecret: [REDACTED]\n"
        );
    }

    #[test]
    fn pem_private_key_block_is_replaced_whole_and_certificates_kept() {
        let text = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(
            redact(text),
            "key:\n[REDACTED-PRIVATE-KEY]\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        );
    }

    #[test]
    fn truncated_pem_private_key_is_replaced_to_the_end() {
        assert_eq!(
            redact("log: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN"),
            "log: [REDACTED-PRIVATE-KEY]"
        );
    }

    #[test]
    fn redaction_is_idempotent_on_samples() {
        let text =
            format!("Bearer {JWT_SAMPLE} client_secret=abc {{\"access_token\": \"{JWT_SAMPLE}\"}}");
        let once = redact(&text);
        assert_eq!(redact(&once), once);
        assert!(!once.contains("eyJ"));
        assert!(!once.contains("abc"));
    }

    #[test]
    fn report_copy_redacts_nested_fields() {
        let report = RunReport {
            run_id: "r".into(),
            provider: "local".into(),
            started_at: chrono::DateTime::UNIX_EPOCH,
            duration: std::time::Duration::ZERO,
            environment: vec![("token".into(), format!("Bearer {JWT_SAMPLE}"))],
            scenarios: vec![ScenarioReport {
                name: "s".into(),
                file: "s.yaml".into(),
                mode: "standard".into(),
                tags: vec![],
                status: crate::Outcome::Failed,
                duration: std::time::Duration::ZERO,
                steps: vec![StepReport {
                    index: 1,
                    name: "token".into(),
                    kind: "token".into(),
                    status: crate::Outcome::Failed,
                    duration: std::time::Duration::ZERO,
                    failures: vec![Failure {
                        expectation: "status".into(),
                        expected: "403".into(),
                        actual: format!("200 {JWT_SAMPLE}"),
                        message: "client_secret=zzz".into(),
                    }],
                    output: Some(JWT_SAMPLE.into()),
                }],
                attachments: vec![],
                skip_reason: Some(JWT_SAMPLE.into()),
            }],
        };
        let text = format!("{:?}", report.redacted());
        assert!(!text.contains("eyJ"), "{text}");
        assert!(!text.contains("zzz"), "{text}");
    }
}
