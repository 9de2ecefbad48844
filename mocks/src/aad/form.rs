//! Parsing the client-credentials token request (form body and HTTP Basic client auth).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Fields of a token request that the mock looks at; unknown fields are ignored, as AAD does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenForm {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `client_id` (form or Basic user).
    pub client_id: Option<String>,
    /// `client_secret` (form or Basic password).
    pub client_secret: Option<String>,
    /// `client_assertion` JWT.
    pub client_assertion: Option<String>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// v1 `resource`.
    pub resource: Option<String>,
    /// v2 `scope`.
    pub scope: Option<String>,
}

/// Parses an `application/x-www-form-urlencoded` body; first occurrence of a key wins.
pub fn parse_form(body: &[u8]) -> TokenForm {
    let mut form = TokenForm::default();
    for (k, v) in url::form_urlencoded::parse(body) {
        let slot = match k.as_ref() {
            "grant_type" => &mut form.grant_type,
            "client_id" => &mut form.client_id,
            "client_secret" => &mut form.client_secret,
            "client_assertion" => &mut form.client_assertion,
            "client_assertion_type" => &mut form.client_assertion_type,
            "resource" => &mut form.resource,
            "scope" => &mut form.scope,
            _ => continue,
        };
        if slot.is_none() && !v.is_empty() {
            *slot = Some(v.into_owned());
        }
    }
    form
}

/// Decodes `Authorization: Basic` client credentials (RFC 6749 §2.3.1: form-encoded id and secret).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded_and_unknown_ignored() {
        let f = parse_form(
            b"grant_type=client_credentials&client_id=abc&scope=https%3A%2F%2Fstorage.azure.com%2F.default&x-client-SKU=py&client_id=second",
        );
        assert_eq!(f.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(f.client_id.as_deref(), Some("abc"));
        assert_eq!(
            f.scope.as_deref(),
            Some("https://storage.azure.com/.default")
        );
        assert_eq!(f.resource, None);
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let h = format!("Basic {}", STANDARD.encode("app%2B1:s%3Acret"));
        assert_eq!(parse_basic(&h), Some(("app+1".into(), "s:cret".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
