//! Property tests: request parsing never panics on arbitrary input.

use podid_mocks::{
    ImdsQuery, check_api_version, identity_patch, parse_basic, parse_blob_address, parse_form,
    selector,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn imds_query_parsing_never_panics(raw in ".*", identity in any::<bool>()) {
        let q = ImdsQuery::parse(Some(&raw));
        let _ = check_api_version(&q, identity);
        let _ = selector(&q);
    }

    #[test]
    fn imds_query_round_trips_generated_pairs(pairs in proptest::collection::vec(("[a-z_-]{1,8}", ".*"), 0..6)) {
        let raw: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs.iter()).finish();
        let q = ImdsQuery::parse(Some(&raw));
        prop_assert_eq!(q.pairs.len(), pairs.len());
        let mut seen = std::collections::HashSet::new();
        prop_assert_eq!(q.has_duplicates, pairs.iter().any(|(k, _)| !seen.insert(k.clone())));
    }

    #[test]
    fn aad_form_and_basic_parsing_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512), header in ".*") {
        let _ = parse_form(&body);
        let _ = parse_basic(&header);
    }

    #[test]
    fn aad_form_recovers_generated_fields(client in "[ -~]{1,40}", secret in "[ -~]{1,40}") {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &client)
            .append_pair("client_secret", &secret)
            .finish();
        let f = parse_form(body.as_bytes());
        prop_assert_eq!(f.client_id.as_deref(), Some(client.as_str()));
        prop_assert_eq!(f.client_secret.as_deref(), Some(secret.as_str()));
    }

    #[test]
    fn blob_address_and_identity_patch_never_panic(host in ".*", path in ".*", json in ".*") {
        let _ = parse_blob_address(Some(&host), &format!("/{path}"));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&json) {
            let _ = identity_patch::parse(&v);
        }
    }
}
