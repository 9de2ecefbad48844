//! The run's certificate authority and the server certificate every HTTPS mock presents.
//!
//! The leaf covers the real Azure host names, so clients can be pointed at the mocks by name
//! resolution alone and trust them through the run's CA.

use std::sync::{Arc, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::MockError;
use crate::hosts::BLOB_HOST_SUFFIX;

/// Azure host names the leaf always covers, besides every blob host.
const AZURE_NAMES: &[&str] = &[
    "login.microsoftonline.com",
    "login.windows.net",
    "sts.windows.net",
    "management.azure.com",
    "management.core.windows.net",
];

/// Loopback names the leaf always covers (clients that address the mocks directly).
const LOCAL_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Names the leaf always covers, in certificate order: Azure hosts, the blob wildcard, loopback.
fn base_names() -> Vec<String> {
    let blob_wildcard = format!("*{BLOB_HOST_SUFFIX}");
    AZURE_NAMES
        .iter()
        .map(|s| s.to_string())
        .chain([blob_wildcard])
        .chain(LOCAL_NAMES.iter().map(|s| s.to_string()))
        .collect()
}

/// The current leaf: its PEM and the rustls key that serves it.
struct Leaf {
    names: Vec<String>,
    pem: String,
    key: Arc<CertifiedKey>,
}

/// CA plus a server certificate that is re-issued when new storage accounts appear.
pub struct CloudTls {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    leaf: Arc<RwLock<Leaf>>,
    server_config: Arc<ServerConfig>,
}

impl std::fmt::Debug for CloudTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudTls").finish_non_exhaustive()
    }
}

/// Hands rustls whatever leaf is current.
struct LeafResolver(Arc<RwLock<Leaf>>);

impl std::fmt::Debug for LeafResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeafResolver")
    }
}

impl ResolvesServerCert for LeafResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|l| l.key.clone())
    }
}

fn keygen(what: &'static str) -> impl Fn(rcgen::Error) -> MockError {
    move |source| MockError::KeyGeneration { what, source }
}

impl CloudTls {
    /// Creates a CA and a leaf for the base names, `extra_sans` and the given account hosts.
    pub(crate) fn generate(
        extra_sans: &[String],
        account_hosts: &[String],
    ) -> Result<Self, MockError> {
        let ca_key = KeyPair::generate().map_err(keygen("CA key"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(keygen("CA"))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "podid mock Azure CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(keygen("CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);
        let mut names = base_names();
        for n in extra_sans.iter().chain(account_hosts) {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let ca_der = ca_cert.der().clone();
        let leaf = issue_leaf(&issuer, &ca_der, names)?;
        let leaf = Arc::new(RwLock::new(leaf));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut server_config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(LeafResolver(leaf.clone())));
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der,
            issuer,
            leaf,
            server_config: Arc::new(server_config),
        })
    }

    /// PEM of the run's CA certificate: the only thing clients need to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// DER of the run's CA certificate.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// PEM of the current server (leaf) certificate.
    pub fn leaf_pem(&self) -> String {
        self.leaf.read().map(|l| l.pem.clone()).unwrap_or_default()
    }

    /// Subject alternative names the current leaf covers.
    pub fn leaf_names(&self) -> Vec<String> {
        self.leaf
            .read()
            .map(|l| l.names.clone())
            .unwrap_or_default()
    }

    /// Writes the CA PEM to `path` (for `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, …).
    pub fn write_ca_bundle(&self, path: impl AsRef<std::path::Path>) -> Result<(), MockError> {
        let path = path.as_ref();
        std::fs::write(path, &self.ca_pem).map_err(|source| MockError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// rustls configuration for the HTTPS mocks (ALPN h2 and http/1.1).
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config.clone()
    }

    /// Re-issues the leaf if `hosts` contains names it does not cover yet.
    pub(crate) fn ensure_names(&self, hosts: &[String]) -> Result<(), MockError> {
        let current = self.leaf_names();
        let missing: Vec<&String> = hosts.iter().filter(|h| !current.contains(h)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut names = current;
        names.extend(missing.into_iter().cloned());
        let leaf = issue_leaf(&self.issuer, &self.ca_der, names)?;
        if let Ok(mut guard) = self.leaf.write() {
            *guard = leaf;
        }
        Ok(())
    }
}

fn issue_leaf(
    issuer: &Issuer<'static, KeyPair>,
    ca_der: &CertificateDer<'static>,
    names: Vec<String>,
) -> Result<Leaf, MockError> {
    let key = KeyPair::generate().map_err(keygen("server key"))?;
    let mut params = CertificateParams::new(names.clone()).map_err(keygen("server certificate"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "podid mock Azure services");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params
        .signed_by(&key, issuer)
        .map_err(keygen("server certificate"))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der)?;
    let certified = CertifiedKey::new(vec![cert.der().clone(), ca_der.clone()], signing);
    Ok(Leaf {
        names,
        pem: cert.pem(),
        key: Arc::new(certified),
    })
}
