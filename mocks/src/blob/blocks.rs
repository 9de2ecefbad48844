//! Block blobs uploaded in pieces: Put Block stages a block, Put Block List commits a list of
//! staged and committed blocks as the blob's content, Get Block List lists both kinds. What the
//! SDKs use for blobs larger than their single-shot limit.

use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use quick_xml::Reader;
use quick_xml::events::Event;

use super::ops::{empty, set};
use super::response::http_date;
use super::xml;
use crate::request_parts::header_str;
use crate::state::{CommittedBlock, ContainerState, StoredBlob, UncommittedBlock, new_etag};

/// Longest block id, in bytes before Base64 encoding.
const MAX_BLOCK_ID_BYTES: usize = 64;

/// A refused block operation: status, Azure error code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
}

const INVALID_BLOCK_ID: BlockError = BlockError {
    status: StatusCode::BAD_REQUEST,
    code: "InvalidBlockId",
    message: "The specified block ID is invalid. The block ID must be Base64-encoded.",
};
const INVALID_BLOB_OR_BLOCK: BlockError = BlockError {
    status: StatusCode::BAD_REQUEST,
    code: "InvalidBlobOrBlock",
    message: "The specified blob or block content is invalid.",
};
const INVALID_BLOCK_LIST: BlockError = BlockError {
    status: StatusCode::BAD_REQUEST,
    code: "InvalidBlockList",
    message: "The specified block list is invalid.",
};
const INVALID_XML: BlockError = BlockError {
    status: StatusCode::BAD_REQUEST,
    code: "InvalidXmlDocument",
    message: "XML specified is not syntactically valid.",
};
const MISSING_QUERY: BlockError = BlockError {
    status: StatusCode::BAD_REQUEST,
    code: "MissingRequiredQueryParameter",
    message: "A query parameter that's mandatory for this request is not specified.",
};
const BAD_QUERY: BlockError = BlockError {
    status: StatusCode::BAD_REQUEST,
    code: "InvalidQueryParameterValue",
    message: "Value for one of the query parameters specified in the request URI is invalid.",
};
const BLOB_NOT_FOUND: BlockError = BlockError {
    status: StatusCode::NOT_FOUND,
    code: "BlobNotFound",
    message: "The specified blob does not exist.",
};
const BLOB_EXISTS: BlockError = BlockError {
    status: StatusCode::CONFLICT,
    code: "BlobAlreadyExists",
    message: "The specified blob already exists.",
};

fn query<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Length in bytes of a valid block id once decoded: Base64, 1 to 64 bytes.
fn decoded_len(id: &str) -> Result<usize, BlockError> {
    match STANDARD.decode(id) {
        Ok(raw) if !raw.is_empty() && raw.len() <= MAX_BLOCK_ID_BYTES => Ok(raw.len()),
        _ => Err(INVALID_BLOCK_ID),
    }
}

/// Put Block (`PUT …?comp=block&blockid=ID`): stages the body as block `ID` of `blob`,
/// replacing an uncommitted block of the same id. All block ids of a blob have one length.
pub(crate) fn put_block(
    c: &mut ContainerState,
    blob: &str,
    q: &[(String, String)],
    body: Bytes,
) -> Result<Response, BlockError> {
    let id = query(q, "blockid").ok_or(MISSING_QUERY)?;
    let len = decoded_len(id)?;
    let committed = c
        .blobs
        .get(blob)
        .map(|b| b.blocks.as_slice())
        .unwrap_or(&[]);
    let staged = c.uncommitted.get(blob).map(Vec::as_slice).unwrap_or(&[]);
    let other_lengths = committed
        .iter()
        .map(|b| b.id.as_str())
        .chain(staged.iter().map(|b| b.id.as_str()))
        .filter_map(|other| decoded_len(other).ok());
    if other_lengths.into_iter().any(|l| l != len) {
        return Err(INVALID_BLOB_OR_BLOCK);
    }
    let staged = c.uncommitted.entry(blob.to_string()).or_default();
    staged.retain(|b| b.id != id);
    staged.push(UncommittedBlock {
        id: id.to_string(),
        data: body.to_vec(),
    });
    let mut r = empty(StatusCode::CREATED);
    set(&mut r, "x-ms-request-server-encrypted", "true");
    Ok(r)
}

/// Which list a Put Block List entry takes its block from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ListEntry {
    Committed(String),
    Uncommitted(String),
    /// The uncommitted block if there is one, else the committed one.
    Latest(String),
}

/// Reads a `<BlockList>` request body: `Committed`, `Uncommitted` and `Latest` elements in
/// order.
fn parse_block_list(body: &[u8]) -> Result<Vec<ListEntry>, BlockError> {
    let mut reader = Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut entries = Vec::new();
    let mut open: Option<Vec<u8>> = None;
    let mut text = String::new();
    let mut saw_root = false;
    let mut root_closed = false;
    loop {
        match reader.read_event().map_err(|_| INVALID_XML)? {
            Event::Start(e) => {
                let name = e.name().as_ref().to_vec();
                if !saw_root {
                    if name != b"BlockList" {
                        return Err(INVALID_XML);
                    }
                    saw_root = true;
                } else if open.is_some() {
                    return Err(INVALID_XML);
                } else {
                    open = Some(name);
                    text.clear();
                }
            }
            Event::Empty(e) => {
                let name = e.name().as_ref().to_vec();
                match (saw_root, name.as_slice()) {
                    (false, b"BlockList") => {
                        saw_root = true;
                        root_closed = true;
                    }
                    (true, b"Committed") => entries.push(ListEntry::Committed(String::new())),
                    (true, b"Uncommitted") => entries.push(ListEntry::Uncommitted(String::new())),
                    (true, b"Latest") => entries.push(ListEntry::Latest(String::new())),
                    _ => return Err(INVALID_XML),
                }
            }
            Event::Text(t) if open.is_some() => {
                text.push_str(&t.decode().map_err(|_| INVALID_XML)?);
            }
            Event::End(e) => {
                let Some(name) = open.take() else {
                    root_closed = e.name().as_ref() == b"BlockList";
                    continue;
                };
                if e.name().as_ref() != name.as_slice() {
                    return Err(INVALID_XML);
                }
                let id = text.trim().to_string();
                entries.push(match name.as_slice() {
                    b"Committed" => ListEntry::Committed(id),
                    b"Uncommitted" => ListEntry::Uncommitted(id),
                    b"Latest" => ListEntry::Latest(id),
                    _ => return Err(INVALID_XML),
                });
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if saw_root && root_closed && open.is_none() {
        Ok(entries)
    } else {
        Err(INVALID_XML)
    }
}

/// Put Block List (`PUT …?comp=blocklist`): the listed blocks, in order, become the blob's
/// content and committed block list; the blob's other uncommitted blocks are discarded. A
/// block missing from the list it is taken from makes the whole list invalid.
pub(crate) fn put_block_list(
    c: &mut ContainerState,
    blob: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<Response, BlockError> {
    let entries = parse_block_list(body)?;
    if header_str(headers, "if-none-match") == Some("*") && c.blobs.contains_key(blob) {
        return Err(BLOB_EXISTS);
    }
    let existing = c.blobs.get(blob);
    let committed = |id: &str| -> Option<&[u8]> {
        let b = existing?;
        let mut offset = 0;
        for block in &b.blocks {
            if block.id == id {
                return b.content.get(offset..offset + block.size);
            }
            offset += block.size;
        }
        None
    };
    let staged = c.uncommitted.get(blob).map(Vec::as_slice).unwrap_or(&[]);
    let uncommitted = |id: &str| {
        staged
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.data.as_slice())
    };
    let mut content = Vec::new();
    let mut blocks = Vec::with_capacity(entries.len());
    for entry in &entries {
        let (id, data) = match entry {
            ListEntry::Committed(id) => (id, committed(id)),
            ListEntry::Uncommitted(id) => (id, uncommitted(id)),
            ListEntry::Latest(id) => (id, uncommitted(id).or_else(|| committed(id))),
        };
        let data = data.ok_or(INVALID_BLOCK_LIST)?;
        content.extend_from_slice(data);
        blocks.push(CommittedBlock {
            id: id.clone(),
            size: data.len(),
        });
    }
    let created = existing.map_or(now, |b| b.created);
    let stored = StoredBlob {
        content,
        content_type: header_str(headers, "x-ms-blob-content-type")
            .unwrap_or("application/octet-stream")
            .to_string(),
        etag: new_etag(),
        created,
        modified: now,
        blocks,
    };
    let mut r = empty(StatusCode::CREATED);
    set(&mut r, "etag", &stored.etag);
    set(&mut r, "last-modified", &http_date(now));
    set(&mut r, "x-ms-request-server-encrypted", "true");
    c.uncommitted.remove(blob);
    c.blobs.insert(blob.to_string(), stored);
    c.modified = now;
    Ok(r)
}

/// Get Block List (`GET …?comp=blocklist[&blocklisttype=committed|uncommitted|all]`,
/// committed by default).
pub(crate) fn get_block_list(
    c: &ContainerState,
    blob: &str,
    q: &[(String, String)],
) -> Result<Response, BlockError> {
    let (with_committed, with_uncommitted) = match query(q, "blocklisttype") {
        None | Some("committed") => (true, false),
        Some("uncommitted") => (false, true),
        Some("all") => (true, true),
        Some(_) => return Err(BAD_QUERY),
    };
    let stored = c.blobs.get(blob);
    let staged = c.uncommitted.get(blob);
    if stored.is_none() && staged.is_none_or(Vec::is_empty) {
        return Err(BLOB_NOT_FOUND);
    }
    let committed = with_committed.then(|| {
        stored
            .map(|b| {
                b.blocks
                    .iter()
                    .map(|k| xml::BlockItem {
                        name: k.id.clone(),
                        size: k.size,
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    let uncommitted = with_uncommitted.then(|| {
        staged
            .map(|v| {
                v.iter()
                    .map(|k| xml::BlockItem {
                        name: k.id.clone(),
                        size: k.data.len(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    let mut r = Response::new(Body::from(xml::block_list(committed, uncommitted)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Some(b) = stored {
        set(&mut r, "etag", &b.etag);
        set(&mut r, "last-modified", &http_date(b.modified));
        set(
            &mut r,
            "x-ms-blob-content-length",
            &b.content.len().to_string(),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lists_parse_in_order() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
            <BlockList><Latest>QQ==</Latest><Committed>Qg==</Committed><Uncommitted>Qw==</Uncommitted></BlockList>"#;
        assert_eq!(
            parse_block_list(body).unwrap(),
            vec![
                ListEntry::Latest("QQ==".into()),
                ListEntry::Committed("Qg==".into()),
                ListEntry::Uncommitted("Qw==".into()),
            ]
        );
        assert_eq!(parse_block_list(b"<BlockList/>").unwrap(), vec![]);
        assert_eq!(parse_block_list(b"not xml <"), Err(INVALID_XML));
        assert_eq!(
            parse_block_list(b"<BlockList><Latest>QQ=="),
            Err(INVALID_XML)
        );
        assert_eq!(
            parse_block_list(b"<BlockList><Other>x</Other></BlockList>"),
            Err(INVALID_XML)
        );
        assert_eq!(parse_block_list(b"<Other/>"), Err(INVALID_XML));
    }

    #[test]
    fn block_ids_are_base64_of_at_most_64_bytes() {
        assert_eq!(decoded_len("QUJD"), Ok(3));
        assert_eq!(decoded_len("not base64!"), Err(INVALID_BLOCK_ID));
        assert_eq!(decoded_len(""), Err(INVALID_BLOCK_ID));
        assert_eq!(
            decoded_len(&STANDARD.encode([0u8; 65])),
            Err(INVALID_BLOCK_ID)
        );
    }
}
