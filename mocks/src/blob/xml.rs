//! Blob XML: error documents and the List Blobs / List Containers enumerations.

use serde::Serialize;

/// `<Error>` body of a storage error.
#[derive(Debug, Serialize)]
#[serde(rename = "Error")]
struct ErrorDoc<'a> {
    #[serde(rename = "Code")]
    code: &'a str,
    #[serde(rename = "Message")]
    message: String,
    #[serde(
        rename = "AuthenticationErrorDetail",
        skip_serializing_if = "Option::is_none"
    )]
    detail: Option<&'a str>,
}

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

fn serialize<T: Serialize>(doc: &T) -> String {
    match quick_xml::se::to_string(doc) {
        Ok(s) => format!("{XML_DECL}{s}"),
        Err(e) => {
            tracing::error!(error = %e, "serializing blob XML failed");
            XML_DECL.to_string()
        }
    }
}

/// Renders an error document; `Message` carries the request id and time as Azure's does.
pub fn error_body(
    code: &str,
    message: &str,
    request_id: &str,
    time: &str,
    detail: Option<&str>,
) -> String {
    serialize(&ErrorDoc {
        code,
        message: format!("{message}\nRequestId:{request_id}\nTime:{time}"),
        detail,
    })
}

/// `<Properties>` of a listed blob.
#[derive(Debug, Serialize)]
pub struct BlobProperties {
    #[serde(rename = "Creation-Time")]
    pub creation_time: String,
    #[serde(rename = "Last-Modified")]
    pub last_modified: String,
    #[serde(rename = "Etag")]
    pub etag: String,
    #[serde(rename = "Content-Length")]
    pub content_length: usize,
    #[serde(rename = "Content-Type")]
    pub content_type: String,
    #[serde(rename = "BlobType")]
    pub blob_type: &'static str,
    #[serde(rename = "AccessTier")]
    pub access_tier: &'static str,
    #[serde(rename = "AccessTierInferred")]
    pub access_tier_inferred: bool,
    #[serde(rename = "LeaseStatus")]
    pub lease_status: &'static str,
    #[serde(rename = "LeaseState")]
    pub lease_state: &'static str,
    #[serde(rename = "ServerEncrypted")]
    pub server_encrypted: bool,
}

/// One `<Blob>` entry.
#[derive(Debug, Serialize)]
pub struct BlobItem {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Properties")]
    pub properties: BlobProperties,
}

#[derive(Debug, Serialize)]
struct Blobs {
    #[serde(rename = "Blob", default)]
    blob: Vec<BlobItem>,
}

#[derive(Debug, Serialize)]
#[serde(rename = "EnumerationResults")]
struct BlobEnumeration {
    #[serde(rename = "@ServiceEndpoint")]
    service_endpoint: String,
    #[serde(rename = "@ContainerName")]
    container_name: String,
    #[serde(rename = "Prefix", skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(rename = "Blobs")]
    blobs: Blobs,
    #[serde(rename = "NextMarker")]
    next_marker: String,
}

/// List Blobs response body.
pub fn list_blobs(
    service_endpoint: &str,
    container: &str,
    prefix: Option<&str>,
    items: Vec<BlobItem>,
) -> String {
    serialize(&BlobEnumeration {
        service_endpoint: service_endpoint.to_string(),
        container_name: container.to_string(),
        prefix: prefix.map(str::to_string),
        blobs: Blobs { blob: items },
        next_marker: String::new(),
    })
}

/// `<Properties>` of a listed container.
#[derive(Debug, Serialize)]
pub struct ContainerProperties {
    #[serde(rename = "Last-Modified")]
    pub last_modified: String,
    #[serde(rename = "Etag")]
    pub etag: String,
    #[serde(rename = "LeaseStatus")]
    pub lease_status: &'static str,
    #[serde(rename = "LeaseState")]
    pub lease_state: &'static str,
}

/// One `<Container>` entry.
#[derive(Debug, Serialize)]
pub struct ContainerItem {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Properties")]
    pub properties: ContainerProperties,
}

#[derive(Debug, Serialize)]
struct Containers {
    #[serde(rename = "Container", default)]
    container: Vec<ContainerItem>,
}

#[derive(Debug, Serialize)]
#[serde(rename = "EnumerationResults")]
struct ContainerEnumeration {
    #[serde(rename = "@ServiceEndpoint")]
    service_endpoint: String,
    #[serde(rename = "Containers")]
    containers: Containers,
    #[serde(rename = "NextMarker")]
    next_marker: String,
}

/// List Containers response body.
pub fn list_containers(service_endpoint: &str, items: Vec<ContainerItem>) -> String {
    serialize(&ContainerEnumeration {
        service_endpoint: service_endpoint.to_string(),
        containers: Containers { container: items },
        next_marker: String::new(),
    })
}

/// One `<Block>` of a Get Block List answer: its Base64 id and size in bytes.
#[derive(Debug, Serialize)]
pub struct BlockItem {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Size")]
    pub size: usize,
}

#[derive(Debug, Serialize)]
struct Blocks {
    #[serde(rename = "Block", default)]
    block: Vec<BlockItem>,
}

#[derive(Debug, Serialize)]
#[serde(rename = "BlockList")]
struct BlockListDoc {
    #[serde(rename = "CommittedBlocks", skip_serializing_if = "Option::is_none")]
    committed: Option<Blocks>,
    #[serde(rename = "UncommittedBlocks", skip_serializing_if = "Option::is_none")]
    uncommitted: Option<Blocks>,
}

/// Get Block List response body; a list not asked for is left out.
pub fn block_list(
    committed: Option<Vec<BlockItem>>,
    uncommitted: Option<Vec<BlockItem>>,
) -> String {
    serialize(&BlockListDoc {
        committed: committed.map(|block| Blocks { block }),
        uncommitted: uncommitted.map(|block| Blocks { block }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_document_shape() {
        let x = error_body(
            "BlobNotFound",
            "The specified blob does not exist.",
            "rid",
            "t",
            None,
        );
        assert_eq!(
            x,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.\nRequestId:rid\nTime:t</Message></Error>"
        );
        let x = error_body(
            "InvalidAuthenticationInfo",
            "m",
            "r",
            "t",
            Some("Issuer validation failed. Issuer did not match."),
        );
        assert!(x.contains("<AuthenticationErrorDetail>Issuer validation failed. Issuer did not match.</AuthenticationErrorDetail>"));
    }

    #[test]
    fn block_list_document_shape() {
        let x = block_list(
            Some(vec![BlockItem {
                name: "QQ==".into(),
                size: 3,
            }]),
            Some(vec![]),
        );
        assert!(
            x.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><CommittedBlocks><Block><Name>QQ==</Name><Size>3</Size></Block></CommittedBlocks>"),
            "{x}"
        );
        assert!(
            x.contains("<UncommittedBlocks/>")
                || x.contains("<UncommittedBlocks></UncommittedBlocks>"),
            "{x}"
        );
        let x = block_list(None, Some(vec![]));
        assert!(
            !x.contains("CommittedBlocks>") || x.contains("UncommittedBlocks"),
            "{x}"
        );
        assert!(!x.contains("<CommittedBlocks"), "{x}");
    }

    #[test]
    fn listing_has_attributes_and_escapes_names() {
        let x = list_blobs("https://a.blob.core.windows.net/", "c", None, vec![]);
        assert!(x.contains("<EnumerationResults ServiceEndpoint=\"https://a.blob.core.windows.net/\" ContainerName=\"c\">"), "{x}");
        assert!(
            x.contains("<Blobs/>") || x.contains("<Blobs></Blobs>"),
            "{x}"
        );
        let item = BlobItem {
            name: "a&b<c".into(),
            properties: BlobProperties {
                creation_time: "t".into(),
                last_modified: "t".into(),
                etag: "\"e\"".into(),
                content_length: 1,
                content_type: "text/plain".into(),
                blob_type: "BlockBlob",
                access_tier: "Hot",
                access_tier_inferred: true,
                lease_status: "unlocked",
                lease_state: "available",
                server_encrypted: true,
            },
        };
        let x = list_blobs("e", "c", Some("p"), vec![item]);
        assert!(x.contains("<Name>a&amp;b&lt;c</Name>"), "{x}");
        assert!(x.contains("<Prefix>p</Prefix>"), "{x}");
    }
}
