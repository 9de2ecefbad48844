//! Which resources (token audiences) exist in the mock tenant, and which audiences a service accepts.

use crate::hosts::blob_host;

/// App ID URIs of Azure first-party resources AAD and IMDS issue tokens for.
const WELL_KNOWN_RESOURCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.core.windows.net",
    "https://storage.azure.com",
    "e406a681-f3d4-42a8-90b6-c2b029497af1",
    "https://vault.azure.net",
    "https://graph.microsoft.com",
    "https://graph.windows.net",
    "https://database.windows.net",
    "https://ossrdbms-aad.database.windows.net",
    "https://servicebus.azure.net",
    "https://eventhubs.azure.net",
    "https://cosmos.azure.com",
    "https://monitor.azure.com",
    "https://api.loganalytics.io",
    "https://cognitiveservices.azure.com",
    "https://batch.core.windows.net",
    "https://datalake.azure.net",
    "https://dev.azuresynapse.net",
    "https://digitaltwins.azure.net",
    "https://aks.azure.com",
    "6dae42f8-4368-4678-94ff-3960e28e3630",
];

/// Audiences Azure Storage accepts for any account.
const STORAGE_AUDIENCES: &[&str] = &[
    "https://storage.azure.com",
    "e406a681-f3d4-42a8-90b6-c2b029497af1",
];

/// Audiences ARM accepts.
const ARM_AUDIENCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.core.windows.net",
];

/// Canonical form for audience comparison: no trailing `/`, lower case.
fn canon(aud: &str) -> String {
    aud.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `resource` is an Azure first-party resource: a well-known Azure service (ARM,
/// Storage, Key Vault, Graph, …) or one of the cloud's storage account endpoints. AAD issues
/// v1 tokens for these from either endpoint, because a resource's registration, not the
/// endpoint, decides the token version.
pub fn is_first_party_resource(resource: &str, account_names: &[String]) -> bool {
    let r = canon(resource);
    WELL_KNOWN_RESOURCES.iter().any(|k| *k == r)
        || account_names
            .iter()
            .any(|a| r == canon(&format!("https://{}", blob_host(a))))
}

/// Whether AAD/IMDS knows `resource`: first-party, or configured in `extra_resources`.
pub fn is_known_resource(resource: &str, account_names: &[String], extra: &[String]) -> bool {
    let r = canon(resource);
    is_first_party_resource(resource, account_names) || extra.iter().any(|e| canon(e) == r)
}

/// Whether Blob accepts `aud` for `account`.
pub fn is_storage_audience(aud: &str, account: &str) -> bool {
    let a = canon(aud);
    STORAGE_AUDIENCES.contains(&a.as_str())
        || a == canon(&format!("https://{}", blob_host(account)))
}

/// Whether ARM accepts `aud`; `own_base` is the URL the request addressed (custom clouds).
pub fn is_arm_audience(aud: &str, own_base: Option<&str>, extra: &[String]) -> bool {
    let a = canon(aud);
    ARM_AUDIENCES.contains(&a.as_str())
        || own_base.is_some_and(|b| canon(b) == a)
        || extra.iter().any(|e| canon(e) == a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_match_with_or_without_trailing_slash() {
        let accts = vec!["acct".to_string()];
        assert!(is_known_resource("https://management.azure.com/", &[], &[]));
        assert!(is_known_resource("https://storage.azure.com", &[], &[]));
        assert!(is_known_resource(
            "https://acct.blob.core.windows.net/",
            &accts,
            &[]
        ));
        assert!(!is_known_resource(
            "https://other.blob.core.windows.net/",
            &accts,
            &[]
        ));
        assert!(!is_known_resource("https://evil.example/", &[], &[]));
        assert!(is_known_resource(
            "https://arm.mock/",
            &[],
            &["https://arm.mock".into()]
        ));
    }

    #[test]
    fn first_party_resources_exclude_configured_ones() {
        let accts = vec!["acct".to_string()];
        for r in [
            "https://management.azure.com/",
            "https://storage.azure.com",
            "https://vault.azure.net",
            "https://graph.microsoft.com",
            "e406a681-f3d4-42a8-90b6-c2b029497af1",
            "https://acct.blob.core.windows.net",
        ] {
            assert!(is_first_party_resource(r, &accts), "{r}");
        }
        assert!(!is_first_party_resource("api://my-app", &accts));
        assert!(!is_first_party_resource(
            "11111111-2222-3333-4444-555555555555",
            &accts
        ));
    }

    #[test]
    fn storage_audience_is_account_specific() {
        assert!(is_storage_audience("https://storage.azure.com/", "a"));
        assert!(is_storage_audience("https://a.blob.core.windows.net", "a"));
        assert!(!is_storage_audience("https://b.blob.core.windows.net", "a"));
        assert!(!is_storage_audience("https://management.azure.com/", "a"));
    }
}
