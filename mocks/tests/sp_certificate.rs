//! A generated service-principal certificate used the way NMI uses it: the client takes key and
//! certificate out of the PKCS#12 bundle, signs an adal-style client assertion (RS256, `x5t`,
//! `aud` = the v1 token URL with its query) and gets a token for the principal from the mock AAD.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
use podid_mocks::{CloudSpec, ServicePrincipal, SpCredential, sp_certificate};
use serde_json::{Value, json};
use sha1::Digest;

const GENERATED_CLIENT: &str = "33333333-0000-0000-0000-0000000000aa";
const GENERATED_OBJECT: &str = "44444444-0000-0000-0000-0000000000aa";

/// Key (as PKCS#8 PEM) and certificate DER out of the bundle, as a client would read them.
fn open_bundle(pkcs12: &[u8], password: &str) -> (EncodingKey, Vec<u8>) {
    let store = KeyStore::from_pkcs12(pkcs12, password, Pkcs12ImportPolicy::Strict).unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(chain.key().as_der())
    );
    (
        EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        chain.certs()[0].as_der().to_vec(),
    )
}

#[tokio::test]
async fn generated_certificate_signs_in_through_the_v1_endpoint_nmi_uses() {
    let env = Env::start().await;
    let generated = sp_certificate::generate("podid-generated-sp").unwrap();
    env.cloud
        .apply(&CloudSpec {
            service_principals: vec![ServicePrincipal {
                name: "generated".into(),
                client_id: GENERATED_CLIENT.into(),
                object_id: GENERATED_OBJECT.into(),
                credential: SpCredential::Certificate {
                    cert_pem: generated.cert_pem.clone(),
                },
            }],
            ..CloudSpec::default()
        })
        .unwrap();
    let (key, cert_der) = open_bundle(&generated.pkcs12, &generated.password);
    let token_path = format!("/{TENANT}/oauth2/token?api-version=1.0");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&cert_der)));
    header.x5c = Some(vec![STANDARD.encode(&cert_der)]);
    let claims = json!({
        "aud": format!("https://login.microsoftonline.com{token_path}"),
        "iss": GENERATED_CLIENT, "sub": GENERATED_CLIENT,
        "jti": "podid", "nbf": now, "exp": now + 600,
    });
    let jwt = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let resp = env
        .client
        .post(env.aad_url(&token_path))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", GENERATED_CLIENT),
            ("resource", "https://management.azure.com/"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &jwt),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let claims = env
        .verify_with_published_jwks(
            body["access_token"].as_str().unwrap(),
            "https://management.azure.com/",
            &format!("https://sts.windows.net/{TENANT}/"),
        )
        .await;
    assert_eq!(claims["appid"], GENERATED_CLIENT);
    assert_eq!(claims["oid"], GENERATED_OBJECT);
    assert_eq!(claims["appidacr"], "2", "certificate credential");
}
