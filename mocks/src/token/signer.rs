//! The per-run RSA key that signs every token the mock issues, and its published JWKS.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::error::MockError;

/// RS256 signing key with a self-signed certificate, like AAD's published signing keys.
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    cert_b64: String,
    n: String,
    e: String,
}

impl TokenSigner {
    /// Generates a fresh 2048-bit RSA key and a certificate for it.
    pub fn generate() -> Result<Self, MockError> {
        let keygen = |source| MockError::KeyGeneration {
            what: "token-signing key",
            source,
        };
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(keygen)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(keygen)?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "accounts.accesscontrol.windows.net",
        );
        let cert = params.self_signed(&key).map_err(keygen)?;
        let kid = URL_SAFE_NO_PAD.encode(Sha1::digest(cert.der()));
        let encoding = EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes())?;
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256)?;
        let AlgorithmParameters::RSA(rsa) = jwk.algorithm else {
            unreachable!("an RSA encoding key yields an RSA JWK")
        };
        let decoding = DecodingKey::from_rsa_components(&rsa.n, &rsa.e)?;
        Ok(Self {
            encoding,
            decoding,
            kid,
            cert_b64: STANDARD.encode(cert.der()),
            n: rsa.n,
            e: rsa.e,
        })
    }

    /// Key id: the base64url SHA-1 thumbprint of the key's certificate (also its `x5t`).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Verification key for tokens this signer produced.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Signs `claims` as an RS256 JWT; v1 tokens carry `x5t` besides `kid`, as AAD's do.
    pub fn sign<T: Serialize>(&self, claims: &T, with_x5t: bool) -> Result<String, MockError> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_string());
        header.kid = Some(self.kid.clone());
        if with_x5t {
            header.x5t = Some(self.kid.clone());
        }
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// The JWKS document (`{"keys":[…]}`) AAD publishes at `…/discovery/keys`.
    pub fn jwks(&self, issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "kid": self.kid,
                "x5t": self.kid,
                "n": self.n,
                "e": self.e,
                "x5c": [self.cert_b64],
                "issuer": issuer,
            }]
        })
    }
}
