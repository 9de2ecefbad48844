//! Property tests: `redact` never panics, is idempotent, and no JWT survives it.

use podid_reports::redact;
use proptest::prelude::*;

/// One base64url segment as a JWT encoder would produce it.
fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{4,60}"
}

/// A JWT: header starting `eyJ` (base64url of `{"`), payload, signature (possibly empty).
fn jwt() -> impl Strategy<Value = String> {
    (
        segment(),
        segment(),
        prop_oneof![segment(), Just(String::new())],
    )
        .prop_map(|(header, payload, signature)| format!("eyJ{header}.eyJ{payload}.{signature}"))
}

/// Text around a token: anything at all, or log-like text with separators.
fn surrounding() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~\n]{0,40}",
        Just("Authorization: Bearer ".to_owned()),
        Just("{\"access_token\":\"".to_owned()),
        Just("client_assertion=".to_owned()),
    ]
}

/// Finds a JWT-looking string without the crate's pattern: `eyJ`, base64url, `.`, base64url, `.`.
fn contains_jwt(text: &str) -> bool {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '=';
    text.match_indices("eyJ").any(|(start, _)| {
        let rest = &text[start..];
        let mut parts = rest.splitn(3, '.');
        let header = parts.next().unwrap_or("");
        let payload = parts.next();
        let signature = parts.next();
        header.chars().all(is_b64)
            && payload.is_some_and(|p| p.chars().all(is_b64))
            && signature.is_some()
    })
}

proptest! {
    #[test]
    fn never_panics_and_is_idempotent(text in any::<String>()) {
        let once = redact(&text);
        prop_assert_eq!(redact(&once), once);
    }

    #[test]
    fn no_jwt_survives(before in surrounding(), token in jwt(), after in surrounding()) {
        let text = format!("{before}{token}{after}");
        let out = redact(&text);
        prop_assert!(!contains_jwt(&out), "JWT survived in {:?}", out);
        let payload = token.split('.').nth(1).expect("payload segment");
        prop_assume!(!before.contains(payload) && !after.contains(payload));
        prop_assert!(!out.contains(payload), "payload survived in {:?}", out);
    }

    #[test]
    fn text_without_markers_is_unchanged(text in "[a-z0-9 .,:/()=-]{0,80}") {
        prop_assume!(["oken", "ecret", "assword", "earer"].iter().all(|marker| !text.contains(marker)));
        prop_assert_eq!(redact(&text), text);
    }
}
