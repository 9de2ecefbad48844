//! The identity resource IDs a request names, so a shared cloud can tell which caller's
//! identities a request concerns: IMDS's `mi_res_id`/`msi_res_id` selector, and the keys of
//! `identity.userAssignedIdentities` in an ARM PATCH/PUT of a VM or scale set (additions `{}`
//! and removals `null` alike). A write that drops every user-assigned identity without naming
//! them (MIC removing the last one sends `type: None` or `SystemAssigned` and no list; a PUT
//! replaces the list) concerns the identities the machine holds, so those count too. Read from
//! the raw request, before any handler or fault rule, so refused and faulted requests are
//! attributed too.

use serde_json::Value;

use crate::arm::identity_patch::IdentityType;
use crate::record::Service;
use crate::resource_id::normalize;

/// Largest ARM body read for attribution; ARM itself refuses far smaller identity bodies.
pub(crate) const MAX_ARM_BODY: usize = 4 * 1024 * 1024;

/// Query keys IMDS accepts as a resource-ID selector.
const RESOURCE_ID_PARAMS: [&str; 2] = ["mi_res_id", "msi_res_id"];

/// Whether attributing this request needs its body (an ARM write of a VM or scale set).
pub(crate) fn needs_body(service: Service, method: &str, path: &str) -> bool {
    service == Service::Arm && is_write(method) && machine_address(path).is_some()
}

fn is_write(method: &str) -> bool {
    method.eq_ignore_ascii_case("PATCH") || method.eq_ignore_ascii_case("PUT")
}

/// Resource group, resource type and name of `…/resourceGroups/RG/providers/Microsoft.Compute/
/// virtualMachines/NAME` or `…/virtualMachineScaleSets/NAME`.
pub(crate) fn machine_address(path: &str) -> Option<(&str, &str, &str)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_machine = segments.len() == 8
        && segments[2].eq_ignore_ascii_case("resourceGroups")
        && segments[4].eq_ignore_ascii_case("providers")
        && segments[5].eq_ignore_ascii_case("Microsoft.Compute")
        && (segments[6].eq_ignore_ascii_case("virtualMachines")
            || segments[6].eq_ignore_ascii_case("virtualMachineScaleSets"));
    is_machine.then(|| (segments[3], segments[6], segments[7]))
}

/// Whether an ARM machine write drops every user-assigned identity it does not list: a PUT, or
/// a PATCH whose `identity.type` has no `UserAssigned`.
fn replaces_user_identities(method: &str, body: &Value) -> bool {
    if method.eq_ignore_ascii_case("PUT") {
        return true;
    }
    body.get("identity")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .and_then(IdentityType::parse)
        .is_some_and(|t| !t.user)
}

/// The normalised (lower-case, no trailing `/`) identity resource IDs a request names, sorted,
/// without duplicates. `held` gives the identities the addressed machine holds now (asked only
/// for an ARM write that drops them all).
pub(crate) fn identity_ids(
    service: Service,
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: Option<&[u8]>,
    held: impl FnOnce() -> Vec<String>,
) -> Vec<String> {
    let mut ids = std::collections::BTreeSet::new();
    let mut push = |id: &str| {
        let id = normalize(id);
        if !id.is_empty() {
            ids.insert(id);
        }
    };
    match service {
        Service::Imds => query
            .iter()
            .filter(|(k, _)| RESOURCE_ID_PARAMS.contains(&k.as_str()))
            .for_each(|(_, v)| push(v)),
        Service::Arm if needs_body(service, method, path) => {
            let Some(parsed) = body.and_then(|b| serde_json::from_slice::<Value>(b).ok()) else {
                return Vec::new();
            };
            if let Some(map) = parsed
                .get("identity")
                .and_then(|i| i.get("userAssignedIdentities"))
                .and_then(Value::as_object)
            {
                map.keys().for_each(|k| push(k));
            }
            if replaces_user_identities(method, &parsed) {
                held().iter().for_each(|id| push(id));
            }
        }
        _ => {}
    }
    ids.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMSS: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool";
    const ID_A: &str = "/subscriptions/s/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/A";
    const ID_B: &str = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b/";

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn imds_resource_id_selectors_are_normalised() {
        let q = pairs(&[("api-version", "2018-02-01"), ("mi_res_id", ID_A)]);
        assert_eq!(
            identity_ids(
                Service::Imds,
                "GET",
                "/metadata/identity/oauth2/token",
                &q,
                None,
                Vec::new
            ),
            vec![normalize(ID_A)]
        );
        let q = pairs(&[("msi_res_id", ID_B), ("client_id", "c")]);
        assert_eq!(
            identity_ids(
                Service::Imds,
                "GET",
                "/metadata/identity/oauth2/token",
                &q,
                None,
                Vec::new
            ),
            vec![
                "/subscriptions/s/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/b"
            ]
        );
        let q = pairs(&[("client_id", "c")]);
        assert!(identity_ids(Service::Imds, "GET", "/x", &q, None, Vec::new).is_empty());
    }

    #[test]
    fn writes_dropping_every_user_identity_concern_what_the_machine_holds() {
        let held = || vec![normalize(ID_A)];
        for (method, body) in [
            ("PATCH", serde_json::json!({"identity": {"type": "None"}})),
            (
                "PATCH",
                serde_json::json!({"identity": {"type": "SystemAssigned"}}),
            ),
            ("PUT", serde_json::json!({"location": "eastus"})),
        ] {
            let body = serde_json::to_vec(&body).unwrap();
            let ids = identity_ids(Service::Arm, method, VMSS, &[], Some(&body), held);
            assert_eq!(ids, vec![normalize(ID_A)], "{method}");
        }
        let keeps = serde_json::json!({"identity": {"type": "SystemAssigned, UserAssigned",
            "userAssignedIdentities": {ID_B: null}}});
        let body = serde_json::to_vec(&keeps).unwrap();
        assert_eq!(
            identity_ids(Service::Arm, "PATCH", VMSS, &[], Some(&body), held),
            vec![normalize(ID_B)]
        );
        assert_eq!(
            machine_address(VMSS),
            Some(("rg", "virtualMachineScaleSets", "pool"))
        );
    }

    #[test]
    fn arm_machine_writes_name_added_and_removed_identities() {
        let body = serde_json::json!({"identity": {"type": "UserAssigned",
            "userAssignedIdentities": {ID_A: {}, ID_B: null}}});
        let body = serde_json::to_vec(&body).unwrap();
        for method in ["PATCH", "PUT"] {
            let ids = identity_ids(Service::Arm, method, VMSS, &[], Some(&body), Vec::new);
            assert_eq!(
                ids,
                vec![normalize(ID_A), normalize(ID_B)],
                "{method}: sorted"
            );
        }
        assert!(identity_ids(Service::Arm, "GET", VMSS, &[], Some(&body), Vec::new).is_empty());
        let other =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x";
        assert!(identity_ids(Service::Arm, "PATCH", other, &[], Some(&body), Vec::new).is_empty());
        assert!(
            identity_ids(
                Service::Arm,
                "PATCH",
                VMSS,
                &[],
                Some(b"not json"),
                Vec::new
            )
            .is_empty()
        );
        assert!(identity_ids(Service::Blob, "PUT", VMSS, &[], Some(&body), Vec::new).is_empty());
    }
}
