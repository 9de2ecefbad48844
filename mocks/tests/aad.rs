//! AAD token service and discovery over real HTTPS.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, Header};
use podid_mocks::{REDACTED, RequestFilter, Service};
use serde_json::{Value, json};

async fn post_form(env: &Env, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = env
        .client
        .post(env.aad_url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn v1_secret_form<'a>(
    client: &'a str,
    secret: &'a str,
    resource: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
        ("resource", resource),
    ]
}

#[tokio::test]
async fn v1_client_secret_token_has_string_fields_and_verifies_against_published_jwks() {
    let env = Env::start().await;
    let path = format!("/{TENANT}/oauth2/token?api-version=1.0");
    let (status, body) = post_form(
        &env,
        &path,
        &v1_secret_form(SP_SECRET_CLIENT, SP_SECRET, "https://management.azure.com/"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for k in [
        "expires_in",
        "ext_expires_in",
        "expires_on",
        "not_before",
        "resource",
        "token_type",
        "access_token",
    ] {
        assert!(body[k].is_string(), "{k} must be a JSON string: {body}");
    }
    assert_eq!(body["expires_in"], "3599");
    assert_eq!(body["resource"], "https://management.azure.com/");
    let token = body["access_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.x5t, header.kid, "v1 tokens carry x5t == kid");
    let claims = env
        .verify_with_published_jwks(
            token,
            "https://management.azure.com/",
            &format!("https://sts.windows.net/{TENANT}/"),
        )
        .await;
    assert_eq!(claims["appid"], SP_SECRET_CLIENT);
    assert_eq!(claims["appidacr"], "1");
    assert_eq!(claims["oid"], SP_SECRET_OBJECT);
    assert_eq!(claims["sub"], SP_SECRET_OBJECT);
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["idtyp"], "app");
    let exp = claims["exp"].as_u64().unwrap();
    let nbf = claims["nbf"].as_u64().unwrap();
    assert_eq!(exp - nbf, 3599 + 300, "nbf back-dated 5 minutes");
    assert_eq!(body["expires_on"], exp.to_string());
}

#[tokio::test]
async fn v2_endpoint_answers_with_numbers_and_mints_v1_tokens_for_first_party_resources() {
    let env = Env::start().await;
    let path = format!("/{TENANT}/oauth2/v2.0/token");
    for (scope, aud) in [
        (
            "https://storage.azure.com/.default",
            "https://storage.azure.com",
        ),
        (
            "https://management.azure.com//.default",
            "https://management.azure.com/",
        ),
        (
            "https://vault.azure.net/.default",
            "https://vault.azure.net",
        ),
        (
            "https://graph.microsoft.com/.default",
            "https://graph.microsoft.com",
        ),
        (
            "https://podiddata.blob.core.windows.net/.default",
            "https://podiddata.blob.core.windows.net",
        ),
    ] {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", SP_SECRET_CLIENT),
            ("client_secret", SP_SECRET),
            ("scope", scope),
            ("client_info", "1"),
        ];
        let (status, body) = post_form(&env, &path, &form).await;
        assert_eq!(status, 200, "{scope}: {body}");
        assert_eq!(body["expires_in"], json!(3599), "v2 body uses numbers");
        assert!(body.get("expires_on").is_none() && body.get("resource").is_none());
        let token = body["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.x5t, header.kid, "{scope}: a v1 token carries x5t");
        let claims = env
            .verify_with_published_jwks(token, aud, &format!("https://sts.windows.net/{TENANT}/"))
            .await;
        assert_eq!(claims["ver"], "1.0", "{scope}");
        assert_eq!(claims["appid"], SP_SECRET_CLIENT, "{scope}");
        assert_eq!(claims["appidacr"], "1");
        assert!(
            claims.get("azp").is_none(),
            "{scope}: v1 tokens have no azp"
        );
    }
}

#[tokio::test]
async fn v2_endpoint_mints_v2_tokens_for_other_resources() {
    let env = Env::start().await;
    env.cloud
        .apply(&podid_mocks::CloudSpec {
            extra_resources: vec!["api://podid-test-app".into()],
            ..Default::default()
        })
        .unwrap();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", SP_SECRET_CLIENT),
        ("client_secret", SP_SECRET),
        ("scope", "api://podid-test-app/.default"),
    ];
    let (status, body) = post_form(&env, &format!("/{TENANT}/oauth2/v2.0/token"), &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], json!(3599));
    let token = body["access_token"].as_str().unwrap();
    assert!(
        jsonwebtoken::decode_header(token).unwrap().x5t.is_none(),
        "v2 header has no x5t"
    );
    let claims = env
        .verify_with_published_jwks(
            token,
            "api://podid-test-app",
            &format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        )
        .await;
    assert_eq!(claims["azp"], SP_SECRET_CLIENT);
    assert_eq!(claims["azpacr"], "1");
    assert_eq!(claims["ver"], "2.0");
    assert!(claims.get("appid").is_none());
    // The v1 endpoint mints v1 tokens for the same resource.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", SP_SECRET_CLIENT),
        ("client_secret", SP_SECRET),
        ("resource", "api://podid-test-app"),
    ];
    let (status, body) = post_form(&env, &format!("/{TENANT}/oauth2/token"), &form).await;
    assert_eq!(status, 200, "{body}");
    let claims = env
        .verify_with_published_jwks(
            body["access_token"].as_str().unwrap(),
            "api://podid-test-app",
            &format!("https://sts.windows.net/{TENANT}/"),
        )
        .await;
    assert_eq!(claims["ver"], "1.0");
}

#[tokio::test]
async fn client_secret_via_http_basic_is_accepted() {
    use base64::Engine;
    let env = Env::start().await;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{SP_SECRET_CLIENT}:{SP_SECRET}"));
    let resp = env
        .client
        .post(env.aad_url(&format!("/{TENANT}/oauth2/v2.0/token")))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// (path, form, expected status, OAuth error, AADSTS code)
type ErrorCase<'a> = (String, Vec<(&'a str, &'a str)>, u16, &'a str, u64);

#[tokio::test]
async fn aad_errors_have_codes_and_statuses() {
    let env = Env::start().await;
    let v1 = format!("/{TENANT}/oauth2/token");
    let cases: Vec<ErrorCase> = vec![
        (
            v1.clone(),
            v1_secret_form(SP_SECRET_CLIENT, "wrong", "https://management.azure.com/"),
            401,
            "invalid_client",
            7000215,
        ),
        (
            v1.clone(),
            v1_secret_form(
                "99999999-0000-0000-0000-000000000000",
                "x",
                "https://management.azure.com/",
            ),
            400,
            "unauthorized_client",
            700016,
        ),
        (
            "/00000000-dead-beef-0000-000000000000/oauth2/token".into(),
            v1_secret_form(SP_SECRET_CLIENT, SP_SECRET, "https://management.azure.com/"),
            400,
            "invalid_request",
            90002,
        ),
        (
            v1.clone(),
            v1_secret_form(SP_SECRET_CLIENT, SP_SECRET, "https://unknown.example/"),
            400,
            "invalid_resource",
            500011,
        ),
        (
            v1.clone(),
            vec![
                ("client_id", SP_SECRET_CLIENT),
                ("client_secret", SP_SECRET),
                ("resource", "https://management.azure.com/"),
            ],
            400,
            "invalid_request",
            900144,
        ),
        (
            v1.clone(),
            vec![("grant_type", "password"), ("client_id", SP_SECRET_CLIENT)],
            400,
            "unsupported_grant_type",
            70003,
        ),
        (
            v1.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", SP_SECRET_CLIENT),
                ("resource", "https://management.azure.com/"),
            ],
            401,
            "invalid_client",
            7000218,
        ),
        (
            format!("/{TENANT}/oauth2/v2.0/token"),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", SP_SECRET_CLIENT),
                ("client_secret", SP_SECRET),
                ("scope", "https://storage.azure.com/user_impersonation"),
            ],
            400,
            "invalid_scope",
            1002012,
        ),
        // A certificate-only app cannot use a secret.
        (
            v1.clone(),
            v1_secret_form(SP_CERT_CLIENT, "anything", "https://management.azure.com/"),
            401,
            "invalid_client",
            7000215,
        ),
    ];
    for (path, form, status, error, code) in cases {
        let (got, body) = post_form(&env, &path, &form).await;
        assert_eq!(got, status, "{path} {form:?}: {body}");
        assert_eq!(body["error"], error, "{body}");
        assert_eq!(body["error_codes"], json!([code]), "{body}");
        let desc = body["error_description"].as_str().unwrap();
        assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
        assert!(desc.contains("\r\nTrace ID: "), "{desc}");
    }
}

fn assertion(
    env: &Env,
    aud: &str,
    iss: &str,
    exp_offset: i64,
    x5t: Option<&str>,
    key: &jsonwebtoken::EncodingKey,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(x5t.unwrap_or(&env.cert.x5t).to_string());
    let claims = json!({"aud": aud, "iss": iss, "sub": iss, "jti": "abc", "nbf": now, "exp": now + exp_offset});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

async fn assertion_request(env: &Env, jwt: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", SP_CERT_CLIENT),
        ("resource", "https://management.azure.com/"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", jwt),
    ];
    post_form(
        env,
        &format!("/{TENANT}/oauth2/token?api-version=1.0"),
        &form,
    )
    .await
}

#[tokio::test]
async fn client_assertion_is_verified_like_adal_sends_it() {
    let env = Env::start().await;
    // adal: aud is the full token URL including ?api-version=1.0
    let aud = format!("https://login.microsoftonline.com/{TENANT}/oauth2/token?api-version=1.0");
    let good = assertion(&env, &aud, SP_CERT_CLIENT, 3600, None, &env.cert.key);
    let (status, body) = assertion_request(&env, &good).await;
    assert_eq!(status, 200, "{body}");
    let claims = env
        .verify_with_published_jwks(
            body["access_token"].as_str().unwrap(),
            "https://management.azure.com/",
            &env.cloud.issuer_v1(),
        )
        .await;
    assert_eq!(claims["appidacr"], "2");
    assert_eq!(claims["oid"], SP_CERT_OBJECT);

    let other = sp_cert();
    let cases = [
        (
            assertion(&env, &aud, SP_CERT_CLIENT, 3600, None, &other.key),
            700027,
            "wrong signing key",
        ),
        (
            assertion(
                &env,
                &aud,
                SP_CERT_CLIENT,
                3600,
                Some(&other.x5t),
                &other.key,
            ),
            700027,
            "unregistered thumbprint",
        ),
        (
            assertion(&env, &aud, SP_CERT_CLIENT, -3600, None, &env.cert.key),
            700024,
            "expired",
        ),
        (
            assertion(&env, &aud, SP_SECRET_CLIENT, 3600, None, &env.cert.key),
            700021,
            "iss/sub mismatch",
        ),
        (
            assertion(
                &env,
                "https://login.microsoftonline.com/other-tenant/oauth2/token",
                SP_CERT_CLIENT,
                3600,
                None,
                &env.cert.key,
            ),
            700212,
            "wrong audience",
        ),
        ("not-a-jwt".to_string(), 50027, "malformed"),
    ];
    for (jwt, code, what) in cases {
        let (status, body) = assertion_request(&env, &jwt).await;
        assert_eq!(body["error_codes"], json!([code]), "{what}: {body}");
        assert!(status == 401 || status == 400, "{what}: {status}");
    }
}

#[tokio::test]
async fn openid_configuration_and_instance_discovery_follow_the_requested_host() {
    let env = Env::start().await;
    let port = env.aad.local_addr().port();
    let v2: Value = env
        .client
        .get(env.aad_url(&format!("/{TENANT}/v2.0/.well-known/openid-configuration")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v2["issuer"],
        format!("https://login.microsoftonline.com/{TENANT}/v2.0")
    );
    assert_eq!(
        v2["token_endpoint"],
        format!("https://login.microsoftonline.com:{port}/{TENANT}/oauth2/v2.0/token")
    );
    assert!(v2["authorization_endpoint"].is_string());
    let v1: Value = env
        .client
        .get(env.aad_url(&format!("/{TENANT}/.well-known/openid-configuration")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v1["issuer"], format!("https://sts.windows.net/{TENANT}/"));
    assert_eq!(
        v1["jwks_uri"],
        format!("https://login.microsoftonline.com:{port}/{TENANT}/discovery/keys")
    );
    let unknown = env
        .client
        .get(env.aad_url("/not-a-tenant/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);

    let auth = format!("https://login.microsoftonline.com:{port}/{TENANT}/oauth2/v2.0/authorize");
    let disc: Value = env
        .client
        .get(env.aad_url("/common/discovery/instance"))
        .query(&[
            ("api-version", "1.1"),
            ("authorization_endpoint", auth.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        disc["tenant_discovery_endpoint"],
        format!(
            "https://login.microsoftonline.com:{port}/{TENANT}/v2.0/.well-known/openid-configuration"
        )
    );
    assert!(disc["metadata"].as_array().unwrap().len() >= 2);

    let jwks: Value = env
        .client
        .get(env.aad_url("/common/discovery/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, env.cloud.jwks());
    let nf = env
        .client
        .get(env.aad_url("/nothing/here/at/all"))
        .send()
        .await
        .unwrap();
    assert_eq!(nf.status(), 404);
}

#[tokio::test]
async fn aad_requests_are_recorded_without_secrets() {
    let env = Env::start().await;
    let since = env.cloud.next_seq();
    let path = format!("/{TENANT}/oauth2/token?api-version=1.0&client_secret=leak");
    let (status, _) = post_form(
        &env,
        &path,
        &v1_secret_form(SP_SECRET_CLIENT, SP_SECRET, "https://management.azure.com/"),
    )
    .await;
    assert_eq!(status, 200);
    let recs = env.cloud.requests_matching(&RequestFilter {
        service: Some(Service::Aad),
        since_seq: Some(since),
        ..Default::default()
    });
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.client_id.as_deref(), Some(SP_SECRET_CLIENT));
    assert_eq!(r.resource.as_deref(), Some("https://management.azure.com/"));
    assert_eq!(r.method, "POST");
    assert_eq!(r.status, 200);
    assert!(
        r.query.contains(&("client_secret".into(), REDACTED.into())),
        "{:?}",
        r.query
    );
    let dump = format!("{r:?}");
    assert!(!dump.contains(SP_SECRET) && !dump.contains("leak"));
}
