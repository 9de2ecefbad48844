//! Azure host names the mocks answer to, spelled once so the certificate, the Blob router and
//! audience checks cannot drift apart.

/// Suffix of every storage account's blob endpoint host (`ACCOUNT.blob.core.windows.net`).
pub const BLOB_HOST_SUFFIX: &str = ".blob.core.windows.net";

/// Host name of `account`'s blob endpoint.
pub fn blob_host(account: &str) -> String {
    format!("{account}{BLOB_HOST_SUFFIX}")
}
