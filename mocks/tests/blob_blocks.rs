//! Block blobs in pieces over real HTTPS: Put Block, Put Block List, Get Block List with Azure's
//! XML and error codes, and the same RBAC as Put Blob / Get Blob.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;

const VERSION: &str = "2021-08-06";

async fn storage_token(env: &Env, client: &str) -> String {
    env.imds_token(&env.imds_node1, "https://storage.azure.com/", Some(client))
        .await
}

fn block_id(n: u32) -> String {
    STANDARD.encode(format!("block-{n:04}"))
}

async fn put_block(env: &Env, token: &str, blob: &str, id: &str, data: &str) -> reqwest::Response {
    env.client
        .put(env.blob_url(&format!("/data/{blob}")))
        .query(&[("comp", "block"), ("blockid", id)])
        .header("x-ms-version", VERSION)
        .bearer_auth(token)
        .body(data.to_string())
        .send()
        .await
        .unwrap()
}

async fn put_block_list(env: &Env, token: &str, blob: &str, xml: String) -> reqwest::Response {
    env.client
        .put(env.blob_url(&format!("/data/{blob}?comp=blocklist")))
        .header("x-ms-version", VERSION)
        .header("x-ms-blob-content-type", "text/plain")
        .bearer_auth(token)
        .body(xml)
        .send()
        .await
        .unwrap()
}

async fn get_block_list(
    env: &Env,
    token: &str,
    blob: &str,
    kind: Option<&str>,
) -> reqwest::Response {
    let mut url = env.blob_url(&format!("/data/{blob}?comp=blocklist"));
    if let Some(k) = kind {
        url.push_str(&format!("&blocklisttype={k}"));
    }
    env.client
        .get(url)
        .header("x-ms-version", VERSION)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let code = match resp.headers().get("x-ms-error-code") {
        Some(c) => c.to_str().unwrap().to_string(),
        None => panic!(
            "no x-ms-error-code: {status} {}",
            resp.text().await.unwrap()
        ),
    };
    let body = resp.text().await.unwrap();
    assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
    (status, code)
}

fn list(entries: &[(&str, String)]) -> String {
    let items: String = entries
        .iter()
        .map(|(kind, id)| format!("<{kind}>{id}</{kind}>"))
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{items}</BlockList>")
}

#[tokio::test]
async fn blocks_are_staged_listed_and_committed_in_list_order() {
    let env = Env::start().await;
    let token = storage_token(&env, WRITER_CLIENT).await;
    let resp = put_block(&env, &token, "pieces.txt", &block_id(1), "hello ").await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-ms-request-server-encrypted"], "true");
    assert!(resp.headers().contains_key("x-ms-request-id"));
    put_block(&env, &token, "pieces.txt", &block_id(2), "world").await;
    // Restaging an id replaces the earlier data.
    put_block(&env, &token, "pieces.txt", &block_id(2), "blocks").await;
    assert!(
        env.cloud
            .blob_content(ACCOUNT, "data", "pieces.txt")
            .is_none(),
        "uncommitted blocks are not a blob"
    );
    let get = env
        .client
        .get(env.blob_url("/data/pieces.txt"))
        .header("x-ms-version", VERSION)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(get).await, (404, "BlobNotFound".into()));

    let resp = get_block_list(&env, &token, "pieces.txt", Some("uncommitted")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/xml");
    let xml = resp.text().await.unwrap();
    assert_eq!(
        xml,
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><UncommittedBlocks><Block><Name>{}</Name><Size>6</Size></Block><Block><Name>{}</Name><Size>6</Size></Block></UncommittedBlocks></BlockList>",
            block_id(1),
            block_id(2)
        )
    );

    let resp = put_block_list(
        &env,
        &token,
        "pieces.txt",
        list(&[("Latest", block_id(2)), ("Uncommitted", block_id(1))]),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().contains_key("etag") && resp.headers().contains_key("last-modified"));
    assert_eq!(
        env.cloud
            .blob_content(ACCOUNT, "data", "pieces.txt")
            .as_deref(),
        Some(&b"blockshello "[..])
    );
    let resp = get_block_list(&env, &token, "pieces.txt", Some("all")).await;
    assert_eq!(resp.headers()["x-ms-blob-content-length"], "12");
    let xml = resp.text().await.unwrap();
    assert!(xml.contains(&format!(
        "<CommittedBlocks><Block><Name>{}</Name><Size>6</Size></Block><Block><Name>{}</Name><Size>6</Size></Block></CommittedBlocks>",
        block_id(2),
        block_id(1)
    )), "{xml}");
    assert!(
        xml.contains("<UncommittedBlocks/>")
            || xml.contains("<UncommittedBlocks></UncommittedBlocks>"),
        "committing discards the staged blocks: {xml}"
    );
    // Committed by default.
    let xml = get_block_list(&env, &token, "pieces.txt", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        xml.contains("<CommittedBlocks>") && !xml.contains("Uncommitted"),
        "{xml}"
    );

    // A new version reuses a committed block and adds a staged one.
    put_block(&env, &token, "pieces.txt", &block_id(3), "!").await;
    let resp = put_block_list(
        &env,
        &token,
        "pieces.txt",
        list(&[("Committed", block_id(1)), ("Latest", block_id(3))]),
    )
    .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        env.cloud
            .blob_content(ACCOUNT, "data", "pieces.txt")
            .as_deref(),
        Some(&b"hello !"[..])
    );
    let get = env
        .client
        .get(env.blob_url("/data/pieces.txt"))
        .header("x-ms-version", VERSION)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["content-type"], "text/plain");
    assert_eq!(get.text().await.unwrap(), "hello !");
}

#[tokio::test]
async fn invalid_ids_and_lists_get_azures_errors() {
    let env = Env::start().await;
    let token = storage_token(&env, WRITER_CLIENT).await;
    let resp = put_block(&env, &token, "bad.txt", "not base64!", "x").await;
    assert_eq!(error_code(resp).await, (400, "InvalidBlockId".into()));
    let too_long = STANDARD.encode([7u8; 65]);
    let resp = put_block(&env, &token, "bad.txt", &too_long, "x").await;
    assert_eq!(error_code(resp).await, (400, "InvalidBlockId".into()));
    let resp = env
        .client
        .put(env.blob_url("/data/bad.txt?comp=block"))
        .header("x-ms-version", VERSION)
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(resp).await,
        (400, "MissingRequiredQueryParameter".into())
    );
    assert_eq!(
        put_block(&env, &token, "bad.txt", &block_id(1), "x")
            .await
            .status(),
        201
    );
    let other_length = STANDARD.encode("b1");
    let resp = put_block(&env, &token, "bad.txt", &other_length, "x").await;
    assert_eq!(
        error_code(resp).await,
        (400, "InvalidBlobOrBlock".into()),
        "all block ids of a blob have one length"
    );
    let resp = put_block_list(&env, &token, "bad.txt", list(&[("Committed", block_id(1))])).await;
    assert_eq!(
        error_code(resp).await,
        (400, "InvalidBlockList".into()),
        "staged, not committed"
    );
    let resp = put_block_list(&env, &token, "bad.txt", list(&[("Latest", block_id(9))])).await;
    assert_eq!(error_code(resp).await, (400, "InvalidBlockList".into()));
    let resp = put_block_list(&env, &token, "bad.txt", "<BlockList><Latest>".into()).await;
    assert_eq!(error_code(resp).await, (400, "InvalidXmlDocument".into()));
    let resp = get_block_list(&env, &token, "bad.txt", Some("some")).await;
    assert_eq!(
        error_code(resp).await,
        (400, "InvalidQueryParameterValue".into())
    );
    let resp = get_block_list(&env, &token, "never-staged.txt", Some("all")).await;
    assert_eq!(error_code(resp).await, (404, "BlobNotFound".into()));
    // If-None-Match: * refuses to commit over an existing blob.
    let resp = env
        .client
        .put(env.blob_url("/data/hello.txt?comp=blocklist"))
        .header("x-ms-version", VERSION)
        .header("if-none-match", "*")
        .bearer_auth(&token)
        .body(list(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await, (409, "BlobAlreadyExists".into()));
    let resp = env
        .client
        .put(env.blob_url("/missing/b.txt"))
        .query(&[("comp", "block"), ("blockid", block_id(1).as_str())])
        .header("x-ms-version", VERSION)
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await, (404, "ContainerNotFound".into()));
}

#[tokio::test]
async fn block_operations_need_the_same_roles_as_put_and_get_blob() {
    let env = Env::start().await;
    let writer = storage_token(&env, WRITER_CLIENT).await;
    let reader = storage_token(&env, READER_CLIENT).await;
    let resp = put_block(&env, &reader, "r.txt", &block_id(1), "x").await;
    assert_eq!(
        error_code(resp).await,
        (403, "AuthorizationPermissionMismatch".into())
    );
    assert_eq!(
        put_block(&env, &writer, "r.txt", &block_id(1), "x")
            .await
            .status(),
        201
    );
    let resp = put_block_list(&env, &reader, "r.txt", list(&[("Latest", block_id(1))])).await;
    assert_eq!(
        error_code(resp).await,
        (403, "AuthorizationPermissionMismatch".into())
    );
    let resp = get_block_list(&env, &reader, "r.txt", Some("all")).await;
    assert_eq!(resp.status(), 200, "reading the list is a read");
    let resp = put_block_list(&env, &writer, "r.txt", list(&[("Latest", block_id(1))])).await;
    assert_eq!(resp.status(), 201);
}
