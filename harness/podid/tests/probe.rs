//! The real `podid-probe` binary against loopback mock servers: the token request it sends (as
//! Azure SDKs do), the JSON report it prints, and the Blob requests it makes with the token.

use std::process::Output;

use podid_probe::ProbeReport;
use wiremock::matchers::{
    bearer_token, body_string, header, header_exists, method, path, query_param,
    query_param_is_missing,
};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN_PATH: &str = "/metadata/identity/oauth2/token";
const STORAGE: &str = "https://storage.azure.com/";

async fn probe(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_podid-probe"))
        .args(args)
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .output()
        .await
        .expect("podid-probe starts")
}

fn describe(o: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The single JSON line the probe prints, after checking it exited 0.
fn report(o: &Output) -> ProbeReport {
    assert_eq!(o.status.code(), Some(0), "{}", describe(o));
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one JSON line:\n{}", describe(o));
    serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("the report is a ProbeReport ({e}):\n{}", describe(o)))
}

fn no_metadata_header(request: &Request) -> bool {
    !request.headers.contains_key("metadata")
}

fn token_body(access_token: &str) -> serde_json::Value {
    serde_json::json!({
        "access_token": access_token,
        "expires_in": "3599",
        "resource": STORAGE,
        "token_type": "Bearer",
    })
}

#[tokio::test]
async fn token_request_is_sdk_shaped_and_reported() {
    let imds = MockServer::start().await;
    let body = r#"{"access_token":"abc","token_type":"Bearer"}"#;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .and(query_param("api-version", "2018-02-01"))
        .and(query_param("resource", STORAGE))
        .and(query_param("client_id", "X"))
        .and(query_param_is_missing("mi_res_id"))
        .and(query_param_is_missing("msi_res_id"))
        .and(query_param_is_missing("object_id"))
        .and(header("Metadata", "true"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/json")
                .insert_header("x-podid-test", "seen")
                .set_body_string(body),
        )
        .expect(1)
        .mount(&imds)
        .await;

    let o = probe(&[
        "token",
        "--endpoint",
        &imds.uri(),
        "--resource",
        STORAGE,
        "--client-id",
        "X",
    ])
    .await;
    let r = report(&o);
    let token = r.token.as_ref().expect("a token exchange");
    assert_eq!(token.status, Some(200), "{}", describe(&o));
    assert_eq!(token.body, body);
    assert_eq!(token.method, "GET");
    assert!(
        token
            .url
            .starts_with(&format!("{}{TOKEN_PATH}?", imds.uri())),
        "{}",
        token.url
    );
    assert_eq!(token.header("X-Podid-Test"), Some("seen"));
    assert_eq!(token.error, None);
    assert_eq!(r.blob, None);
    assert_eq!(r.error, None);
}

#[tokio::test]
async fn non_200_answers_are_reported_with_status_headers_and_body() {
    let imds = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "20")
                .set_body_string("try later"),
        )
        .expect(1)
        .mount(&imds)
        .await;
    let o = probe(&["token", "--endpoint", &imds.uri(), "--resource", STORAGE]).await;
    let r = report(&o);
    let token = r.token.expect("a token exchange");
    assert_eq!(token.status, Some(503));
    assert_eq!(token.header("retry-after"), Some("20"));
    assert_eq!(token.body, "try later");
    assert_eq!(token.error, None);
}

#[tokio::test]
async fn no_metadata_header_flag_leaves_the_header_out() {
    let imds = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .and(query_param("resource", STORAGE))
        .and(no_metadata_header)
        .respond_with(ResponseTemplate::new(400).set_body_string("no metadata header"))
        .expect(1)
        .mount(&imds)
        .await;

    let o = probe(&[
        "token",
        "--endpoint",
        &imds.uri(),
        "--resource",
        STORAGE,
        "--no-metadata-header",
    ])
    .await;
    let r = report(&o);
    let token = r.token.expect("a token exchange");
    assert_eq!(token.status, Some(400), "{}", describe(&o));
    assert_eq!(token.body, "no metadata header");
    let received = imds.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert!(
        !received[0].headers.contains_key("metadata"),
        "{:?}",
        received[0].headers
    );
}

#[tokio::test]
async fn extra_headers_query_and_path_are_sent_as_given() {
    let imds = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/custom"))
        .and(query_param("api-version", "2018-02-01"))
        .and(query_param("resource", STORAGE))
        .and(query_param("foo", "bar"))
        .and(header("X-A", "b"))
        .and(header("Metadata", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_string("custom"))
        .expect(1)
        .mount(&imds)
        .await;

    let o = probe(&[
        "token",
        "--endpoint",
        &imds.uri(),
        "--resource",
        STORAGE,
        "--header",
        "X-A: b",
        "--query",
        "foo=bar",
        "--path",
        "/custom",
    ])
    .await;
    let r = report(&o);
    let token = r.token.expect("a token exchange");
    assert_eq!(token.status, Some(200), "{}", describe(&o));
    assert_eq!(token.body, "custom");
    assert!(
        token.url.starts_with(&format!("{}/custom?", imds.uri())),
        "{}",
        token.url
    );
}

#[tokio::test]
async fn transport_errors_are_data_not_failures() {
    // A loopback port nobody listens on: bind one, note it, close it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let o = probe(&["token", "--endpoint", &endpoint, "--resource", STORAGE]).await;
    let r = report(&o);
    let token = r.token.expect("the failed exchange is still reported");
    assert_eq!(token.status, None, "{}", describe(&o));
    let error = token.error.as_deref().unwrap_or_default();
    assert!(!error.is_empty(), "token.error explains the failure");
    assert!(
        token.url.starts_with(&format!("{endpoint}{TOKEN_PATH}?")),
        "{}",
        token.url
    );
    assert_eq!(r.blob, None);
}

#[tokio::test]
async fn misuse_exits_non_zero_without_a_report() {
    for args in [
        vec!["token", "--no-such-flag"],
        vec!["frobnicate"],
        vec!["token", "--header", "no colon here"],
        vec!["blob", "--endpoint", "http://127.0.0.1:1"],
    ] {
        let o = probe(&args).await;
        assert!(
            !o.status.success() && o.status.code().is_some(),
            "{args:?}: {}",
            describe(&o)
        );
        assert!(o.stdout.is_empty(), "{args:?}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("error:") && !err.contains("panicked"),
            "{args:?}: {}",
            describe(&o)
        );
    }
}

/// An IMDS that hands out the token `tok`.
async fn imds_with_token() -> MockServer {
    let imds = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .and(query_param("resource", STORAGE))
        .and(header("Metadata", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token_body("tok")))
        .expect(1)
        .mount(&imds)
        .await;
    imds
}

#[tokio::test]
async fn blob_read_uses_the_token() {
    let imds = imds_with_token().await;
    let storage = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/docs/hello.txt"))
        .and(header("Authorization", "Bearer tok"))
        .and(header(
            "x-ms-version",
            podid_probe::cli::STORAGE_API_VERSION,
        ))
        .and(header_exists("x-ms-date"))
        .respond_with(ResponseTemplate::new(200).set_body_string("hello"))
        .expect(1)
        .mount(&storage)
        .await;

    let o = probe(&[
        "blob",
        "--endpoint",
        &imds.uri(),
        "--resource",
        STORAGE,
        "--account-url",
        &storage.uri(),
        "--container",
        "docs",
        "--blob",
        "hello.txt",
    ])
    .await;
    let r = report(&o);
    assert_eq!(r.error, None, "{}", describe(&o));
    assert_eq!(r.token.as_ref().and_then(|t| t.status), Some(200));
    let blob = r.blob.expect("a storage exchange");
    assert_eq!(blob.method, "GET");
    assert_eq!(blob.url, format!("{}/docs/hello.txt", storage.uri()));
    assert_eq!(blob.status, Some(200), "{}", describe(&o));
    assert_eq!(blob.body, "hello");
    let version = podid_probe::cli::STORAGE_API_VERSION;
    assert!(
        version.len() == 10 && version.chars().filter(|c| *c == '-').count() == 2,
        "x-ms-version is a dated REST version: {version}"
    );
}

#[tokio::test]
async fn blob_write_puts_a_block_blob() {
    let imds = imds_with_token().await;
    let storage = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/docs/new.txt"))
        .and(bearer_token("tok"))
        .and(header_exists("x-ms-version"))
        .and(header("x-ms-blob-type", "BlockBlob"))
        .and(body_string("hi"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&storage)
        .await;

    let o = probe(&[
        "blob",
        "--endpoint",
        &imds.uri(),
        "--resource",
        STORAGE,
        "--account-url",
        &format!("{}/", storage.uri()),
        "--container",
        "docs",
        "--blob",
        "new.txt",
        "--op",
        "write",
        "--content",
        "hi",
    ])
    .await;
    let r = report(&o);
    assert_eq!(r.error, None, "{}", describe(&o));
    let blob = r.blob.expect("a storage exchange");
    assert_eq!(blob.method, "PUT");
    assert_eq!(blob.status, Some(201), "{}", describe(&o));
}

#[tokio::test]
async fn blob_list_lists_the_container() {
    let imds = imds_with_token().await;
    let storage = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/docs"))
        .and(query_param("restype", "container"))
        .and(query_param("comp", "list"))
        .and(bearer_token("tok"))
        .and(header_exists("x-ms-version"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<EnumerationResults/>"))
        .expect(1)
        .mount(&storage)
        .await;

    let o = probe(&[
        "blob",
        "--endpoint",
        &imds.uri(),
        "--resource",
        STORAGE,
        "--account-url",
        &storage.uri(),
        "--container",
        "docs",
        "--op",
        "list",
    ])
    .await;
    let r = report(&o);
    assert_eq!(r.error, None, "{}", describe(&o));
    let blob = r.blob.expect("a storage exchange");
    assert_eq!(blob.status, Some(200), "{}", describe(&o));
    assert_eq!(blob.body, "<EnumerationResults/>");
}

#[tokio::test]
async fn blob_is_not_called_without_a_token() {
    let imds = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(404).set_body_string("no identity"))
        .expect(1)
        .mount(&imds)
        .await;
    let storage = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&storage)
        .await;

    let o = probe(&[
        "blob",
        "--endpoint",
        &imds.uri(),
        "--resource",
        STORAGE,
        "--account-url",
        &storage.uri(),
        "--container",
        "docs",
        "--blob",
        "hello.txt",
    ])
    .await;
    let r = report(&o);
    assert_eq!(r.token.as_ref().and_then(|t| t.status), Some(404));
    assert_eq!(r.blob, None, "{}", describe(&o));
    assert!(
        r.error.as_deref().is_some_and(|e| !e.is_empty()),
        "the report says why storage was not called:\n{}",
        describe(&o)
    );
    assert!(storage.received_requests().await.unwrap().is_empty());
}
