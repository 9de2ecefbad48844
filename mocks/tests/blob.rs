//! Blob over real HTTPS: bearer auth with Azure-exact errors, RBAC, get/put/list, path-style URLs.

mod common;

use common::*;
use podid_mocks::{CloudSpec, MockCloud, StorageAccount, TokenRequest, TokenSubject, TokenVersion};

const VERSION: &str = "2021-08-06";

async fn get(env: &Env, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = env.client.get(url).header("x-ms-version", VERSION);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn reader_token(env: &Env) -> String {
    env.imds_token(
        &env.imds_node1,
        "https://storage.azure.com/",
        Some(READER_CLIENT),
    )
    .await
}

async fn assert_xml_error(resp: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["x-ms-error-code"], code);
    assert!(resp.headers().contains_key("x-ms-request-id"));
    let body = resp.text().await.unwrap();
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>"),
        "{body}"
    );
    assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
    body
}

#[tokio::test]
async fn reader_gets_and_lists_blobs_host_style() {
    let env = Env::start().await;
    let token = reader_token(&env).await;
    let resp = get(&env, &env.blob_url("/data/hello.txt"), Some(&token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ms-blob-type"], "BlockBlob");
    assert_eq!(resp.headers()["x-ms-version"], VERSION);
    assert!(resp.headers().contains_key("etag") && resp.headers().contains_key("last-modified"));
    assert_eq!(resp.text().await.unwrap(), BLOB_TEXT);
    let resp = get(
        &env,
        &env.blob_url("/data?restype=container&comp=list"),
        Some(&token),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let xml = resp.text().await.unwrap();
    assert!(xml.contains("ContainerName=\"data\""), "{xml}");
    assert!(xml.contains("<Name>hello.txt</Name>"), "{xml}");
    assert!(
        xml.contains(&format!(
            "<Content-Length>{}</Content-Length>",
            BLOB_TEXT.len()
        )),
        "{xml}"
    );
    // Ranged read as SDKs do it.
    let resp = env
        .client
        .get(env.blob_url("/data/hello.txt"))
        .header("x-ms-version", VERSION)
        .header("x-ms-range", "bytes=0-4")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 0-4/{}", BLOB_TEXT.len())
    );
    assert_eq!(resp.text().await.unwrap(), "hello");
}

#[tokio::test]
async fn path_style_on_ip_address_works() {
    let env = Env::start().await;
    let token = reader_token(&env).await;
    let url = format!(
        "https://127.0.0.1:{}/{ACCOUNT}/data/hello.txt",
        env.blob.local_addr().port()
    );
    let resp = get(&env, &url, Some(&token)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), BLOB_TEXT);
}

#[tokio::test]
async fn authentication_errors_are_azure_exact() {
    let env = Env::start().await;
    let resp = get(&env, &env.blob_url("/data/hello.txt"), None).await;
    assert_eq!(
        resp.headers()["www-authenticate"],
        format!(
            "Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}/oauth2/authorize resource_id=https://storage.azure.com"
        )
    );
    assert_xml_error(resp, 401, "NoAuthenticationInformation").await;

    let expired = env
        .cloud
        .issue_token(&TokenRequest {
            subject: TokenSubject::ManagedIdentity {
                client_id: READER_CLIENT.into(),
            },
            audience: "https://storage.azure.com/".into(),
            version: TokenVersion::V1,
            issued_at: Some(1_600_000_000),
            lifetime_secs: None,
        })
        .unwrap();
    let resp = get(
        &env,
        &env.blob_url("/data/hello.txt"),
        Some(&expired.access_token),
    )
    .await;
    assert!(resp.headers().contains_key("www-authenticate"));
    let body = assert_xml_error(resp, 401, "InvalidAuthenticationInfo").await;
    assert!(body.contains("<AuthenticationErrorDetail>Lifetime validation failed. The token is expired.</AuthenticationErrorDetail>"), "{body}");

    let arm = env
        .imds_token(
            &env.imds_node1,
            "https://management.azure.com/",
            Some(READER_CLIENT),
        )
        .await;
    let body = assert_xml_error(
        get(&env, &env.blob_url("/data/hello.txt"), Some(&arm)).await,
        401,
        "InvalidAuthenticationInfo",
    )
    .await;
    assert!(body.contains("Audience validation failed"), "{body}");

    // A token for another account's host is not valid here.
    let other_aud = env
        .cloud
        .issue_token(&TokenRequest {
            subject: TokenSubject::ManagedIdentity {
                client_id: READER_CLIENT.into(),
            },
            audience: "https://someoneelse.blob.core.windows.net".into(),
            version: TokenVersion::V1,
            issued_at: None,
            lifetime_secs: None,
        })
        .unwrap();
    assert_xml_error(
        get(
            &env,
            &env.blob_url("/data/hello.txt"),
            Some(&other_aud.access_token),
        )
        .await,
        401,
        "InvalidAuthenticationInfo",
    )
    .await;

    // A token from a different cloud (other key, other tenant) is rejected.
    init_crypto();
    let mut foreign_spec = spec(&env.cert.cert_pem);
    foreign_spec.tenant_id = "99999999-9999-9999-9999-999999999999".into();
    let foreign = MockCloud::new(foreign_spec).unwrap();
    let ft = foreign
        .issue_token(&TokenRequest {
            subject: TokenSubject::ManagedIdentity {
                client_id: READER_CLIENT.into(),
            },
            audience: "https://storage.azure.com/".into(),
            version: TokenVersion::V1,
            issued_at: None,
            lifetime_secs: None,
        })
        .unwrap();
    let body = assert_xml_error(
        get(
            &env,
            &env.blob_url("/data/hello.txt"),
            Some(&ft.access_token),
        )
        .await,
        401,
        "InvalidAuthenticationInfo",
    )
    .await;
    assert!(body.contains("Signature validation failed"), "{body}");

    // Bearer needs x-ms-version >= 2017-11-09.
    let token = reader_token(&env).await;
    let resp = env
        .client
        .get(env.blob_url("/data/hello.txt"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_xml_error(resp, 403, "AuthenticationFailed").await;
    let resp = env
        .client
        .get(env.blob_url("/data/hello.txt"))
        .bearer_auth(&token)
        .header("x-ms-version", "2017-04-17")
        .send()
        .await
        .unwrap();
    assert_xml_error(resp, 403, "AuthenticationFailed").await;
}

#[tokio::test]
async fn rbac_decides_reads_and_writes() {
    let env = Env::start().await;
    let reader = reader_token(&env).await;
    let put = |token: String, path: &'static str, body: &'static str| {
        let url = env.blob_url(path);
        let client = env.client.clone();
        async move {
            client
                .put(url)
                .bearer_auth(token)
                .header("x-ms-version", VERSION)
                .header("x-ms-blob-type", "BlockBlob")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let resp = put(reader.clone(), "/data/new.txt", "nope").await;
    let body = assert_xml_error(resp, 403, "AuthorizationPermissionMismatch").await;
    assert!(body.contains(
        "This request is not authorized to perform this operation using this permission."
    ));
    assert!(env.cloud.blob_content(ACCOUNT, "data", "new.txt").is_none());

    let writer = env
        .imds_token(
            &env.imds_node1,
            "https://storage.azure.com/",
            Some(WRITER_CLIENT),
        )
        .await;
    let resp = put(writer.clone(), "/data/new.txt", "written").await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        env.cloud.blob_content(ACCOUNT, "data", "new.txt").unwrap(),
        b"written"
    );
    let resp = get(&env, &env.blob_url("/data/new.txt"), Some(&reader)).await;
    assert_eq!(resp.text().await.unwrap(), "written");
    // If-None-Match: * refuses to overwrite.
    let resp = env
        .client
        .put(env.blob_url("/data/new.txt"))
        .bearer_auth(&writer)
        .header("x-ms-version", VERSION)
        .header("x-ms-blob-type", "BlockBlob")
        .header("If-None-Match", "*")
        .body("again")
        .send()
        .await
        .unwrap();
    assert_xml_error(resp, 409, "BlobAlreadyExists").await;

    // The secret SP may read only container "data" (container-scoped assignment).
    let sp = env
        .cloud
        .issue_token(&TokenRequest {
            subject: TokenSubject::ServicePrincipal {
                client_id: SP_SECRET_CLIENT.into(),
            },
            audience: "https://storage.azure.com".into(),
            version: TokenVersion::V2,
            issued_at: None,
            lifetime_secs: None,
        })
        .unwrap()
        .access_token;
    assert_eq!(
        get(&env, &env.blob_url("/data/hello.txt"), Some(&sp))
            .await
            .status(),
        200,
        "v2 token accepted"
    );
    assert_xml_error(
        get(
            &env,
            &env.blob_url("/other?restype=container&comp=list"),
            Some(&sp),
        )
        .await,
        403,
        "AuthorizationPermissionMismatch",
    )
    .await;
    // Control-plane Owner grants no data access.
    let owner = env
        .cloud
        .issue_token(&TokenRequest {
            subject: TokenSubject::ServicePrincipal {
                client_id: SP_CERT_CLIENT.into(),
            },
            audience: "https://storage.azure.com/".into(),
            version: TokenVersion::V1,
            issued_at: None,
            lifetime_secs: None,
        })
        .unwrap()
        .access_token;
    assert_xml_error(
        get(&env, &env.blob_url("/data/hello.txt"), Some(&owner)).await,
        403,
        "AuthorizationPermissionMismatch",
    )
    .await;
}

#[tokio::test]
async fn not_found_errors_and_containers() {
    let env = Env::start().await;
    let writer = env
        .imds_token(
            &env.imds_node1,
            "https://storage.azure.com/",
            Some(WRITER_CLIENT),
        )
        .await;
    assert_xml_error(
        get(&env, &env.blob_url("/data/missing.txt"), Some(&writer)).await,
        404,
        "BlobNotFound",
    )
    .await;
    assert_xml_error(
        get(&env, &env.blob_url("/nocontainer/x.txt"), Some(&writer)).await,
        404,
        "ContainerNotFound",
    )
    .await;
    assert_xml_error(
        get(
            &env,
            &env.blob_url("/nocontainer?restype=container&comp=list"),
            Some(&writer),
        )
        .await,
        404,
        "ContainerNotFound",
    )
    .await;
    let resp = env
        .client
        .put(env.blob_url("/fresh?restype=container"))
        .bearer_auth(&writer)
        .header("x-ms-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = env
        .client
        .put(env.blob_url("/fresh?restype=container"))
        .bearer_auth(&writer)
        .header("x-ms-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_xml_error(resp, 409, "ContainerAlreadyExists").await;
    let resp = get(&env, &env.blob_url("/?comp=list"), Some(&writer)).await;
    let xml = resp.text().await.unwrap();
    assert!(
        xml.contains("<Name>fresh</Name>") && xml.contains("<Name>data</Name>"),
        "{xml}"
    );
}

#[tokio::test]
async fn accounts_added_at_run_time_get_a_certificate_name_and_storage() {
    let env = Env::start().await;
    env.cloud
        .apply(&CloudSpec {
            storage_accounts: vec![StorageAccount {
                name: "newacct".into(),
                resource_group: RG.into(),
                containers: vec![],
            }],
            ..Default::default()
        })
        .unwrap();
    assert!(
        env.cloud
            .tls()
            .leaf_names()
            .contains(&"newacct.blob.core.windows.net".to_string())
    );
    let dup = env.cloud.apply(&CloudSpec {
        storage_accounts: vec![StorageAccount {
            name: "newacct".into(),
            resource_group: RG.into(),
            containers: vec![],
        }],
        ..Default::default()
    });
    assert!(dup.is_err(), "duplicate account must be refused");
    let writer = env
        .imds_token(
            &env.imds_node1,
            "https://newacct.blob.core.windows.net",
            Some(WRITER_CLIENT),
        )
        .await;
    let url = format!(
        "https://newacct.blob.core.windows.net:{}/c01?restype=container",
        env.blob.local_addr().port()
    );
    let resp = env
        .client
        .put(url)
        .bearer_auth(&writer)
        .header("x-ms-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}
