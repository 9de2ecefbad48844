//! How a pod is pointed at a cloud that is not the one its image expects: host names pinned
//! with `hostAliases`, and the cloud's CA mounted from a ConfigMap with the environment
//! variables each TLS stack reads. NMI, MIC and workload pods all get theirs from here, so
//! they agree on the names and paths.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, EnvVar, HostAlias as K8sHostAlias, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::deployment::HostAlias;

/// Name of the ConfigMap (in each namespace that needs it) holding the CA bundle.
pub const CA_CONFIG_MAP: &str = "podid-ca";
/// Key of the bundle in [`CA_CONFIG_MAP`].
pub const CA_KEY: &str = "ca.crt";
/// Name of the pod volume the bundle is mounted from.
pub const CA_VOLUME: &str = "podid-ca";
/// Directory the bundle is mounted at (a directory, not a `subPath` file, so an updated
/// ConfigMap reaches running pods).
pub const CA_MOUNT_DIR: &str = "/etc/podid/ca";
/// Label on the objects podid adds to upstream's, so they can be told apart.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "podid");

/// Variables Go reads: `SSL_CERT_FILE` replaces the system roots (NMI and MIC are Go).
pub const GO_CA_VARS: &[&str] = &["SSL_CERT_FILE"];
/// Variables for workloads, whatever they are written in: Go and OpenSSL (`SSL_CERT_FILE`),
/// Python's requests (`REQUESTS_CA_BUNDLE`), Node (`NODE_EXTRA_CA_CERTS`, added to its roots).
pub const WORKLOAD_CA_VARS: &[&str] =
    &["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"];

/// Path of the bundle inside a container that mounts [`ca_volume_mount`].
pub fn ca_file_path() -> String {
    format!("{CA_MOUNT_DIR}/{CA_KEY}")
}

/// The ConfigMap holding `pem` in `namespace`.
pub fn ca_config_map(namespace: &str, pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CA_CONFIG_MAP.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.0.to_string(),
                MANAGED_BY_LABEL.1.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(CA_KEY.to_string(), pem.to_string())])),
        ..ConfigMap::default()
    }
}

/// The pod volume backed by [`ca_config_map`].
pub fn ca_volume() -> Volume {
    Volume {
        name: CA_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: CA_CONFIG_MAP.into(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The read-only mount of [`ca_volume`] at [`CA_MOUNT_DIR`].
pub fn ca_volume_mount() -> VolumeMount {
    VolumeMount {
        name: CA_VOLUME.into(),
        mount_path: CA_MOUNT_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// Each of `vars` set to the mounted bundle's path.
pub fn ca_env(vars: &[&str]) -> Vec<EnvVar> {
    vars.iter()
        .map(|name| EnvVar {
            name: (*name).into(),
            value: Some(ca_file_path()),
            ..EnvVar::default()
        })
        .collect()
}

/// Groups `(address, name)` pairs into one entry per address, keeping the order addresses and
/// names first appear in and dropping repeated names.
pub fn group_host_aliases(pairs: impl IntoIterator<Item = (IpAddr, String)>) -> Vec<HostAlias> {
    let mut grouped: Vec<HostAlias> = Vec::new();
    for (ip, name) in pairs {
        match grouped.iter_mut().find(|(known, _)| *known == ip) {
            Some((_, names)) if names.contains(&name) => {}
            Some((_, names)) => names.push(name),
            None => grouped.push((ip, vec![name])),
        }
    }
    grouped
}

/// The pod-spec form of `aliases`.
pub fn host_alias_objects(aliases: &[HostAlias]) -> Vec<K8sHostAlias> {
    aliases
        .iter()
        .map(|(ip, names)| K8sHostAlias {
            ip: ip.to_string(),
            hostnames: Some(names.clone()),
        })
        .collect()
}

/// The blob endpoint host of a storage account, as workloads address it.
pub fn blob_host(account: &str) -> String {
    format!("{account}.blob.core.windows.net")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_aliases_group_by_address_in_first_seen_order() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let grouped = group_host_aliases([
            (b, "login.microsoftonline.com".to_string()),
            (a, "management.azure.com".to_string()),
            (b, "login.microsoftonline.com".to_string()),
            (b, blob_host("acct")),
        ]);
        assert_eq!(
            grouped,
            vec![
                (
                    b,
                    vec![
                        "login.microsoftonline.com".to_string(),
                        "acct.blob.core.windows.net".to_string()
                    ]
                ),
                (a, vec!["management.azure.com".to_string()]),
            ]
        );
    }

    #[test]
    fn every_ca_variable_points_at_the_mounted_file() {
        let env = ca_env(WORKLOAD_CA_VARS);
        assert_eq!(env.len(), 3);
        assert!(
            env.iter()
                .all(|e| e.value.as_deref() == Some("/etc/podid/ca/ca.crt"))
        );
    }
}
