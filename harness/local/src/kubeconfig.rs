//! Rendering the admin kubeconfig (client certificate, embedded data) used by podid and NMI.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Renders a single-context kubeconfig for `server` with embedded CA and client credentials.
pub fn render_kubeconfig(
    server: &str,
    ca_pem: &str,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> String {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "podid-local",
            "cluster": {
                "server": server,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            }
        }],
        "users": [{
            "name": "podid-admin",
            "user": {
                "client-certificate-data": STANDARD.encode(client_cert_pem),
                "client-key-data": STANDARD.encode(client_key_pem),
            }
        }],
        "contexts": [{
            "name": "podid-local",
            "context": { "cluster": "podid-local", "user": "podid-admin" }
        }],
        "current-context": "podid-local",
    });
    serde_saphyr::to_string(&config).expect("a JSON value always serialises to YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_is_readable_by_kube_and_embeds_credentials() {
        let text = render_kubeconfig("https://127.0.0.1:6443", "CA", "CERT", "KEY");
        let parsed = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("podid-local"));
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(
            cluster.certificate_authority_data.as_deref(),
            Some(STANDARD.encode("CA").as_str())
        );
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(
            user.client_certificate_data.as_deref(),
            Some(STANDARD.encode("CERT").as_str())
        );
        let context = parsed.contexts[0].context.as_ref().unwrap();
        assert_eq!(context.cluster, "podid-local");
        assert_eq!(context.user.as_deref(), Some("podid-admin"));
    }
}
