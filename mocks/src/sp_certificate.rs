//! Certificate credentials for service principals: an RSA key and a self-signed certificate,
//! the certificate's PEM to register with AAD ([`crate::SpCredential::Certificate`]), and a
//! password-protected PKCS#12 bundle of key and certificate for the client.
//!
//! The bundle uses the legacy profile (3DES-CBC key and certificate encryption through the
//! PKCS#12 KDF, HMAC-SHA-1 MAC) with exactly one certificate and one key, because NMI decodes it
//! with `golang.org/x/crypto/pkcs12`, which reads only that profile and only that shape. The key
//! is RSA because NMI signs its client assertion with an `*rsa.PrivateKey`.

use std::fmt;

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use sha1::Digest;

use crate::error::MockError;

/// PBE and MAC iteration count: OpenSSL's long-standing default for PKCS#12.
const ITERATIONS: u32 = 2048;

/// A generated certificate credential.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedCertificate {
    /// PEM of the certificate (public part), what AAD registers for the principal.
    pub cert_pem: String,
    /// DER of a PKCS#12 bundle holding the certificate and its private key.
    pub pkcs12: Vec<u8>,
    /// The bundle's password.
    pub password: String,
}

impl fmt::Debug for GeneratedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedCertificate")
            .field("cert_pem", &self.cert_pem)
            .field(
                "pkcs12",
                &format_args!("<{} bytes, redacted>", self.pkcs12.len()),
            )
            .field("password", &crate::REDACTED)
            .finish()
    }
}

fn failed(what: &'static str) -> impl Fn(String) -> MockError {
    move |reason| MockError::Credential { what, reason }
}

/// Generates a 2048-bit RSA key, a self-signed certificate with `common_name` as subject, and
/// the PKCS#12 bundle of both under a random password.
pub fn generate(common_name: &str) -> Result<GeneratedCertificate, MockError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
        .map_err(|e| failed("the certificate's RSA key")(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| failed("the certificate")(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let cert = params
        .self_signed(&key)
        .map_err(|e| failed("the certificate")(e.to_string()))?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    let pkcs12 = bundle(cert.der(), &key.serialize_der(), common_name, &password)?;
    Ok(GeneratedCertificate {
        cert_pem: cert.pem(),
        pkcs12,
        password,
    })
}

/// One key chain (key + its one certificate) under `alias`, in the legacy profile.
fn bundle(
    cert_der: &[u8],
    key_pkcs8_der: &[u8],
    alias: &str,
    password: &str,
) -> Result<Vec<u8>, MockError> {
    let bundle_failed = failed("the PKCS#12 bundle");
    let cert = Certificate::from_der(cert_der).map_err(|e| bundle_failed(e.to_string()))?;
    let key = PrivateKey::from_der(key_pkcs8_der).map_err(|e| bundle_failed(e.to_string()))?;
    let local_key_id = sha1::Sha1::digest(cert_der).to_vec();
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, [cert])),
    );
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha1)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| bundle_failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use p12_keystore::Pkcs12ImportPolicy;
    use rustls_pki_types::pem::PemObject;

    /// DER of OID 1.2.840.113549.1.12.1.3 (pbeWithSHAAnd3-KeyTripleDES-CBC).
    const PBE_SHA_3DES: &[u8] = &[
        0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03,
    ];
    /// DER of OID 1.2.840.113549.1.5.13 (PBES2), which the Go decoder cannot read.
    const PBES2: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d,
    ];
    /// DER of OID 1.3.14.3.2.26 (SHA-1), the MAC digest.
    const SHA1: &[u8] = &[0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn bundle_holds_one_rsa_key_and_its_certificate_in_the_legacy_profile() {
        let generated = generate("podid-sp").unwrap();
        let store = KeyStore::from_pkcs12(
            &generated.pkcs12,
            &generated.password,
            Pkcs12ImportPolicy::Strict,
        )
        .unwrap();
        assert_eq!(store.entries_len(), 1);
        let (_, chain) = store.private_key_chain().unwrap();
        assert_eq!(chain.certs().len(), 1);
        let registered =
            rustls_pki_types::CertificateDer::from_pem_slice(generated.cert_pem.as_bytes())
                .unwrap();
        assert_eq!(chain.certs()[0].as_der(), registered.as_ref());
        assert_eq!(chain.key().oid().to_string(), "1.2.840.113549.1.1.1", "RSA");
        assert!(contains(&generated.pkcs12, PBE_SHA_3DES));
        assert!(contains(&generated.pkcs12, SHA1));
        assert!(!contains(&generated.pkcs12, PBES2));
        assert!(
            KeyStore::from_pkcs12(&generated.pkcs12, "wrong", Pkcs12ImportPolicy::Strict).is_err()
        );
    }

    #[test]
    fn debug_output_hides_the_bundle_and_password() {
        let generated = generate("podid-sp").unwrap();
        let shown = format!("{generated:?}");
        assert!(!shown.contains(&generated.password));
        assert!(shown.contains("BEGIN CERTIFICATE"));
    }
}
