//! Which cloud requests belong to a trial: those that carry one of its unique values (the
//! client and resource IDs of its identities and service principals, its storage accounts'
//! hosts). A trial that shares the cluster counts only these, so other trials' traffic never
//! enters its `requests` expectations.

use std::collections::HashSet;

use crate::instance::ScenarioInstance;
use crate::provider::CloudRequest;

/// A trial's unique values, lower-cased.
#[derive(Debug, Default)]
pub struct Attribution {
    client_ids: HashSet<String>,
    resource_ids: HashSet<String>,
    /// Storage account hosts (`acct.blob.core.windows.net`), without port.
    hosts: HashSet<String>,
    /// Real storage account names: a host's first label.
    accounts: HashSet<String>,
}

/// The host of a URL, lower-cased and without port (`https://a.b:443/x` → `a.b`).
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    strip_port(authority)
}

fn strip_port(host: &str) -> String {
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    host.to_ascii_lowercase()
}

impl Attribution {
    /// The values `inst` holds now, recreated identities' former values included.
    pub fn of(inst: &ScenarioInstance) -> Self {
        let mut out = Self::default();
        for id in inst.identities.values().chain(&inst.retired_identities) {
            out.client_ids.insert(id.client_id.to_ascii_lowercase());
            out.resource_ids.insert(id.resource_id.to_ascii_lowercase());
        }
        for sp in inst.service_principals.values() {
            out.client_ids.insert(sp.client_id.to_ascii_lowercase());
        }
        out.hosts = inst.account_urls.values().map(|u| url_host(u)).collect();
        out.accounts = inst
            .accounts
            .values()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        out
    }

    /// Whether `request` carries one of the trial's values.
    pub fn owns(&self, request: &CloudRequest) -> bool {
        let client = request
            .client_id
            .as_ref()
            .is_some_and(|c| self.client_ids.contains(&c.to_ascii_lowercase()));
        let resource = request
            .identity_ids
            .iter()
            .any(|id| self.resource_ids.contains(&id.to_ascii_lowercase()));
        let host = request.host.as_deref().is_some_and(|h| {
            let h = strip_port(h);
            self.hosts.contains(&h)
                || h.split('.')
                    .next()
                    .is_some_and(|label| self.accounts.contains(label))
        });
        client || resource || host
    }

    /// The requests that are the trial's, in order.
    pub fn filter(&self, requests: Vec<CloudRequest>) -> Vec<CloudRequest> {
        requests.into_iter().filter(|r| self.owns(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podid_scenario::Service;

    fn request(client: Option<&str>, ids: &[&str], host: Option<&str>) -> CloudRequest {
        CloudRequest {
            seq: 0,
            service: Service::Imds,
            node: None,
            method: "GET".into(),
            path: "/".into(),
            client_id: client.map(String::from),
            identity_ids: ids.iter().map(|s| s.to_string()).collect(),
            host: host.map(String::from),
            status: 200,
        }
    }

    #[test]
    fn a_request_is_owned_by_any_of_the_trials_values_and_nothing_else() {
        let mut a = Attribution::default();
        a.client_ids.insert("c-1".into());
        a.resource_ids
            .insert("/subscriptions/s/x/reader-abc".into());
        a.hosts
            .insert(url_host("https://docsab12.blob.core.windows.net/"));
        a.accounts.insert("docsab12".into());
        assert!(a.owns(&request(Some("C-1"), &[], None)));
        assert!(a.owns(&request(None, &["/SUBSCRIPTIONS/s/x/reader-abc"], None)));
        assert!(a.owns(&request(
            None,
            &[],
            Some("docsab12.blob.core.windows.net:443")
        )));
        assert!(a.owns(&request(None, &[], Some("docsab12.blob.localhost"))));
        assert!(!a.owns(&request(Some("c-2"), &["/other"], Some("other.blob"))));
        assert!(!a.owns(&request(None, &[], None)));
    }
}
