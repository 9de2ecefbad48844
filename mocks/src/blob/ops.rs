//! The Blob operations themselves, on the cloud state.

use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::address::BlobAddress;
use super::blocks;
use super::rbac::DataAction;
use super::response::{ResponseContext, http_date};
use super::xml;
use crate::request_parts::header_str;
use crate::state::{CloudState, ContainerState, StoredBlob, new_etag};

/// Which Blob operation a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    ListContainers,
    CreateContainer,
    DeleteContainer,
    ContainerProperties,
    ListBlobs,
    GetBlob,
    BlobProperties,
    PutBlob,
    DeleteBlob,
    PutBlock,
    PutBlockList,
    GetBlockList,
}

/// A deferred error response (built once the response context exists).
pub(crate) type Refusal = Box<dyn FnOnce(&ResponseContext) -> Response + Send>;

fn refuse(status: StatusCode, code: &'static str, message: &'static str) -> Refusal {
    Box::new(move |rc: &ResponseContext| rc.error(status, code, message, None))
}

impl Operation {
    /// Classifies by method, address and `restype`/`comp`.
    pub fn classify(
        method: &Method,
        addr: &BlobAddress,
        query: &[(String, String)],
    ) -> Result<Self, Refusal> {
        let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let restype = q("restype");
        let comp = q("comp");
        let unsupported_verb = || {
            refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "UnsupportedHttpVerb",
                "The resource doesn't support specified Http Verb.",
            )
        };
        let bad_query = || {
            refuse(
                StatusCode::BAD_REQUEST,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
            )
        };
        match (&addr.container, &addr.blob) {
            (None, _) => match (method.as_str(), comp) {
                ("GET", Some("list")) => Ok(Self::ListContainers),
                ("GET", _) => Err(bad_query()),
                _ => Err(unsupported_verb()),
            },
            (Some(_), None) => match (method.as_str(), restype, comp) {
                ("GET" | "HEAD", Some("container"), Some("list")) => Ok(Self::ListBlobs),
                ("GET" | "HEAD", Some("container"), None) => Ok(Self::ContainerProperties),
                ("PUT", Some("container"), None) => Ok(Self::CreateContainer),
                ("DELETE", Some("container"), None) => Ok(Self::DeleteContainer),
                (_, Some("container"), _) => Err(bad_query()),
                _ => Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "InvalidUri",
                    "The requested URI does not represent any resource on the server.",
                )),
            },
            (Some(_), Some(_)) => match (method.as_str(), comp) {
                ("GET", None) => Ok(Self::GetBlob),
                ("HEAD", None) => Ok(Self::BlobProperties),
                ("PUT", None) => Ok(Self::PutBlob),
                ("DELETE", None) => Ok(Self::DeleteBlob),
                ("PUT", Some("block")) => Ok(Self::PutBlock),
                ("PUT", Some("blocklist")) => Ok(Self::PutBlockList),
                ("GET" | "HEAD", Some("blocklist")) => Ok(Self::GetBlockList),
                (_, Some(_)) => Err(refuse(
                    StatusCode::NOT_IMPLEMENTED,
                    "NotImplemented",
                    "This operation is not implemented by the mock.",
                )),
                _ => Err(unsupported_verb()),
            },
        }
    }

    /// The data action RBAC must allow.
    pub fn action(self) -> DataAction {
        match self {
            Self::ListContainers
            | Self::ContainerProperties
            | Self::ListBlobs
            | Self::GetBlob
            | Self::BlobProperties
            | Self::GetBlockList => DataAction::Read,
            Self::PutBlob | Self::PutBlock | Self::PutBlockList => DataAction::Write,
            Self::DeleteBlob => DataAction::Delete,
            Self::CreateContainer | Self::DeleteContainer => DataAction::ManageContainers,
        }
    }
}

pub(super) fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

pub(super) fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

fn container_not_found(rc: &ResponseContext) -> Response {
    rc.error(
        StatusCode::NOT_FOUND,
        "ContainerNotFound",
        "The specified container does not exist.",
        None,
    )
}

fn blob_not_found(rc: &ResponseContext) -> Response {
    rc.error(
        StatusCode::NOT_FOUND,
        "BlobNotFound",
        "The specified blob does not exist.",
        None,
    )
}

/// Azure's container naming rules: 3-63 characters, lower-case letters, digits and hyphens, no
/// leading, trailing or doubled hyphen. ARM's container PUT applies them too.
pub(crate) fn valid_container_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Parses `bytes=START-[END]`.
fn parse_range(v: &str) -> Option<(u64, Option<u64>)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (s, e) = spec.split_once('-')?;
    let start = s.trim().parse().ok()?;
    let end = if e.trim().is_empty() {
        None
    } else {
        Some(e.trim().parse().ok()?)
    };
    match end {
        Some(end) if end < start => None,
        _ => Some((start, end)),
    }
}

/// Runs `op` and renders Azure's response.
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute(
    state: &mut CloudState,
    rc: &ResponseContext,
    op: &Operation,
    addr: &BlobAddress,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Bytes,
    endpoint: &str,
) -> Response {
    let Some(account) = state.accounts.get_mut(&addr.account) else {
        return rc.error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            "The specified resource does not exist.",
            None,
        );
    };
    let cname = addr.container.clone().unwrap_or_default();
    let bname = addr.blob.clone().unwrap_or_default();
    let now = SystemTime::now();
    let resp = match op {
        Operation::ListContainers => {
            let items = account
                .containers
                .iter()
                .map(|(name, c)| xml::ContainerItem {
                    name: name.clone(),
                    properties: xml::ContainerProperties {
                        last_modified: http_date(c.modified),
                        etag: c.etag.clone(),
                        lease_status: "unlocked",
                        lease_state: "available",
                    },
                })
                .collect();
            xml_response(xml::list_containers(endpoint, items))
        }
        Operation::CreateContainer => {
            if !valid_container_name(&cname) {
                return rc.error(
                    StatusCode::BAD_REQUEST,
                    "InvalidResourceName",
                    "The specifed resource name contains invalid characters.",
                    None,
                );
            }
            if account.containers.contains_key(&cname) {
                return rc.error(
                    StatusCode::CONFLICT,
                    "ContainerAlreadyExists",
                    "The specified container already exists.",
                    None,
                );
            }
            let c = ContainerState {
                etag: new_etag(),
                modified: now,
                blobs: Default::default(),
                uncommitted: Default::default(),
            };
            let mut r = empty(StatusCode::CREATED);
            set(&mut r, "etag", &c.etag);
            set(&mut r, "last-modified", &http_date(now));
            account.containers.insert(cname, c);
            r
        }
        Operation::DeleteContainer => {
            if account.containers.remove(&cname).is_none() {
                return container_not_found(rc);
            }
            empty(StatusCode::ACCEPTED)
        }
        Operation::ContainerProperties => {
            let Some(c) = account.containers.get(&cname) else {
                return container_not_found(rc);
            };
            let mut r = empty(StatusCode::OK);
            set(&mut r, "etag", &c.etag);
            set(&mut r, "last-modified", &http_date(c.modified));
            set(&mut r, "x-ms-lease-status", "unlocked");
            set(&mut r, "x-ms-lease-state", "available");
            set(&mut r, "x-ms-has-immutability-policy", "false");
            set(&mut r, "x-ms-has-legal-hold", "false");
            r
        }
        Operation::ListBlobs => {
            let Some(c) = account.containers.get(&cname) else {
                return container_not_found(rc);
            };
            let prefix = query
                .iter()
                .find(|(k, _)| k == "prefix")
                .map(|(_, v)| v.as_str());
            let items = c
                .blobs
                .iter()
                .filter(|(n, _)| prefix.is_none_or(|p| n.starts_with(p)))
                .map(|(n, b)| xml::BlobItem {
                    name: n.clone(),
                    properties: xml::BlobProperties {
                        creation_time: http_date(b.created),
                        last_modified: http_date(b.modified),
                        etag: b.etag.clone(),
                        content_length: b.content.len(),
                        content_type: b.content_type.clone(),
                        blob_type: "BlockBlob",
                        access_tier: "Hot",
                        access_tier_inferred: true,
                        lease_status: "unlocked",
                        lease_state: "available",
                        server_encrypted: true,
                    },
                })
                .collect();
            xml_response(xml::list_blobs(endpoint, &cname, prefix, items))
        }
        Operation::GetBlob | Operation::BlobProperties => {
            let Some(c) = account.containers.get(&cname) else {
                return container_not_found(rc);
            };
            let Some(b) = c.blobs.get(&bname) else {
                return blob_not_found(rc);
            };
            let len = b.content.len() as u64;
            let range = header_str(headers, "x-ms-range").or_else(|| header_str(headers, "range"));
            let mut r = if *op == Operation::BlobProperties {
                let mut r = empty(StatusCode::OK);
                set(&mut r, "content-length", &len.to_string());
                r
            } else {
                match range.map(parse_range) {
                    None => Response::new(Body::from(b.content.clone())),
                    Some(None) => Response::new(Body::from(b.content.clone())),
                    Some(Some((start, end))) => {
                        if start >= len {
                            return rc.error(
                                StatusCode::RANGE_NOT_SATISFIABLE,
                                "InvalidRange",
                                "The range specified is invalid for the current size of the resource.",
                                None,
                            );
                        }
                        let end = end.unwrap_or(len - 1).min(len - 1);
                        let slice = b.content[start as usize..=end as usize].to_vec();
                        let mut r = Response::new(Body::from(slice));
                        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
                        set(
                            &mut r,
                            "content-range",
                            &format!("bytes {start}-{end}/{len}"),
                        );
                        r
                    }
                }
            };
            set(&mut r, "content-type", &b.content_type);
            set(&mut r, "etag", &b.etag);
            set(&mut r, "last-modified", &http_date(b.modified));
            set(&mut r, "x-ms-creation-time", &http_date(b.created));
            set(&mut r, "x-ms-blob-type", "BlockBlob");
            set(&mut r, "x-ms-lease-status", "unlocked");
            set(&mut r, "x-ms-lease-state", "available");
            set(&mut r, "x-ms-server-encrypted", "true");
            set(&mut r, "x-ms-access-tier", "Hot");
            set(&mut r, "x-ms-access-tier-inferred", "true");
            set(&mut r, "accept-ranges", "bytes");
            r
        }
        Operation::PutBlob => {
            let Some(c) = account.containers.get_mut(&cname) else {
                return container_not_found(rc);
            };
            match header_str(headers, "x-ms-blob-type") {
                Some("BlockBlob") => {}
                Some(_) => {
                    return rc.error(
                        StatusCode::BAD_REQUEST,
                        "InvalidHeaderValue",
                        "The value for one of the HTTP headers is not in the correct format.",
                        None,
                    );
                }
                None => {
                    return rc.error(
                        StatusCode::BAD_REQUEST,
                        "MissingRequiredHeader",
                        "An HTTP header that's mandatory for this request is not specified.",
                        None,
                    );
                }
            }
            if header_str(headers, "if-none-match") == Some("*") && c.blobs.contains_key(&bname) {
                return rc.error(
                    StatusCode::CONFLICT,
                    "BlobAlreadyExists",
                    "The specified blob already exists.",
                    None,
                );
            }
            let created = c.blobs.get(&bname).map_or(now, |b| b.created);
            let blob = StoredBlob {
                content: body.to_vec(),
                content_type: header_str(headers, "x-ms-blob-content-type")
                    .unwrap_or("application/octet-stream")
                    .to_string(),
                etag: new_etag(),
                created,
                modified: now,
                blocks: Vec::new(),
            };
            let mut r = empty(StatusCode::CREATED);
            set(&mut r, "etag", &blob.etag);
            set(&mut r, "last-modified", &http_date(now));
            set(&mut r, "x-ms-request-server-encrypted", "true");
            c.uncommitted.remove(&bname);
            c.blobs.insert(bname, blob);
            c.modified = now;
            r
        }
        Operation::PutBlock | Operation::PutBlockList | Operation::GetBlockList => {
            let Some(c) = account.containers.get_mut(&cname) else {
                return container_not_found(rc);
            };
            let result = match op {
                Operation::PutBlock => blocks::put_block(c, &bname, query, body),
                Operation::PutBlockList => blocks::put_block_list(c, &bname, headers, &body, now),
                _ => blocks::get_block_list(c, &bname, query),
            };
            match result {
                Ok(r) => r,
                Err(e) => return rc.error(e.status, e.code, e.message, None),
            }
        }
        Operation::DeleteBlob => {
            let Some(c) = account.containers.get_mut(&cname) else {
                return container_not_found(rc);
            };
            if c.blobs.remove(&bname).is_none() {
                return blob_not_found(rc);
            }
            c.uncommitted.remove(&bname);
            let mut r = empty(StatusCode::ACCEPTED);
            set(&mut r, "x-ms-delete-type-permanent", "true");
            r
        }
    };
    rc.finish(resp)
}

fn xml_response(body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("bytes=0-33554431"), Some((0, Some(33554431))));
        assert_eq!(parse_range("bytes=5-"), Some((5, None)));
        assert_eq!(parse_range("bytes=5-1"), None);
        assert_eq!(parse_range("items=0-1"), None);
    }

    #[test]
    fn container_names_follow_azure_rules() {
        assert!(valid_container_name("data-1"));
        assert!(!valid_container_name("ab"));
        assert!(!valid_container_name("Data"));
        assert!(!valid_container_name("a--b"));
    }
}
