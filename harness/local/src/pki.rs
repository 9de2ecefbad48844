//! The control plane's certificates and keys: a CA, the API server's serving cert, an admin
//! client cert (O=system:masters) and the service-account signing key.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::LocalError;

/// PEM texts of everything the API server and its clients need.
#[derive(Debug, Clone)]
pub struct ClusterPki {
    /// CA certificate (signs the serving and client certs).
    pub ca_cert: String,
    /// API server serving certificate (SANs 127.0.0.1, localhost).
    pub serving_cert: String,
    /// Its key.
    pub serving_key: String,
    /// Admin client certificate (CN=podid-admin, O=system:masters).
    pub admin_cert: String,
    /// Its key.
    pub admin_key: String,
    /// Service-account signing key (PKCS#8).
    pub service_account_key: String,
    /// Its public key (what the API server verifies tokens with).
    pub service_account_public_key: String,
}

/// Where [`ClusterPki::write`] put the files the API server reads.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    /// `ca.crt`, also the `--client-ca-file`.
    pub ca_cert: PathBuf,
    /// `serving.crt`.
    pub serving_cert: PathBuf,
    /// `serving.key`.
    pub serving_key: PathBuf,
    /// `sa.key`.
    pub service_account_key: PathBuf,
    /// `sa.pub`.
    pub service_account_public_key: PathBuf,
}

impl ClusterPki {
    /// Generates a fresh set (ECDSA P-256 keys).
    pub fn generate() -> Result<Self, LocalError> {
        let pki_err = |what: &str| {
            let what = what.to_string();
            move |source| LocalError::Pki { what, source }
        };
        let ca_key = KeyPair::generate().map_err(pki_err("CA key"))?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "podid-local-ca");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(pki_err("CA certificate"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().map_err(pki_err("serving key"))?;
        let mut serving = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .map_err(pki_err("serving certificate parameters"))?;
        serving.distinguished_name = rcgen::DistinguishedName::new();
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let serving_cert = serving
            .signed_by(&serving_key, &issuer)
            .map_err(pki_err("serving certificate"))?;

        let admin_key = KeyPair::generate().map_err(pki_err("admin key"))?;
        let mut admin = CertificateParams::default();
        admin.distinguished_name = rcgen::DistinguishedName::new();
        admin
            .distinguished_name
            .push(DnType::CommonName, "podid-admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let admin_cert = admin
            .signed_by(&admin_key, &issuer)
            .map_err(pki_err("admin certificate"))?;

        let sa_key = KeyPair::generate().map_err(pki_err("service-account key"))?;
        Ok(Self {
            ca_cert: ca_cert.pem(),
            serving_cert: serving_cert.pem(),
            serving_key: serving_key.serialize_pem(),
            admin_cert: admin_cert.pem(),
            admin_key: admin_key.serialize_pem(),
            service_account_key: sa_key.serialize_pem(),
            service_account_public_key: sa_key.public_key_pem(),
        })
    }

    /// Writes the API server's files into `dir` (keys mode 0600).
    pub fn write(&self, dir: &Path) -> Result<PkiFiles, LocalError> {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(dir)
            .map_err(|e| LocalError::io(format!("creating {}", dir.display()), e))?;
        let files = PkiFiles {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("serving.crt"),
            serving_key: dir.join("serving.key"),
            service_account_key: dir.join("sa.key"),
            service_account_public_key: dir.join("sa.pub"),
        };
        for (path, text, secret) in [
            (&files.ca_cert, &self.ca_cert, false),
            (&files.serving_cert, &self.serving_cert, false),
            (&files.serving_key, &self.serving_key, true),
            (&files.service_account_key, &self.service_account_key, true),
            (
                &files.service_account_public_key,
                &self.service_account_public_key,
                false,
            ),
        ] {
            fs::write(path, text)
                .map_err(|e| LocalError::io(format!("writing {}", path.display()), e))?;
            if secret {
                fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                    .map_err(|e| LocalError::io(format!("restricting {}", path.display()), e))?;
            }
        }
        Ok(files)
    }
}
