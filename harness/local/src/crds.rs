//! Installing the aad-pod-identity CRDs from a manifest and waiting until they are Established.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

use crate::LocalError;

/// Parses every `CustomResourceDefinition` document in a multi-document YAML manifest.
pub fn parse_crds(text: &str, origin: &Path) -> Result<Vec<CustomResourceDefinition>, LocalError> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(text).map_err(|e| LocalError::Parse {
            what: format!("CRD manifest {}", origin.display()),
            message: e.to_string(),
        })?;
    docs.into_iter()
        .filter(|d| d.get("kind").and_then(|k| k.as_str()) == Some("CustomResourceDefinition"))
        .map(|d| {
            serde_json::from_value(d).map_err(|e| LocalError::Parse {
                what: format!("a CRD in {}", origin.display()),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Applies the CRDs in `manifest` (server-side apply) and waits until each is Established.
pub async fn install_crds(
    client: &kube::Client,
    manifest: &Path,
    timeout: Duration,
) -> Result<Vec<String>, LocalError> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| LocalError::io(format!("reading CRD manifest {}", manifest.display()), e))?;
    let crds = parse_crds(&text, manifest)?;
    if crds.is_empty() {
        return Err(LocalError::Config(format!(
            "{} holds no CustomResourceDefinition",
            manifest.display()
        )));
    }
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("podid").force();
    let mut names = Vec::new();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|e| LocalError::kube(format!("applying CRD {name}"), e))?;
        names.push(name);
    }
    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(LocalError::Config(format!(
                    "watching CRD {name} for Established: {e}"
                )));
            }
            Err(_) => {
                return Err(LocalError::Config(format!(
                    "CRD {name} not Established after {}s",
                    timeout.as_secs()
                )));
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crd_documents_are_taken() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: azureidentities.aadpodidentity.k8s.io\nspec:\n  group: aadpodidentity.k8s.io\n  names:\n    kind: AzureIdentity\n    plural: azureidentities\n  scope: Namespaced\n  versions: []\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
        let crds = parse_crds(text, Path::new("crd.yaml")).unwrap();
        assert_eq!(crds.len(), 1);
        assert_eq!(
            crds[0].metadata.name.as_deref(),
            Some("azureidentities.aadpodidentity.k8s.io")
        );
    }

    #[test]
    fn malformed_manifest_names_the_file() {
        let err = parse_crds("a: [", Path::new("broken.yaml")).unwrap_err();
        assert!(err.to_string().contains("broken.yaml"), "{err}");
    }
}
