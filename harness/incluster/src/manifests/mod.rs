//! Upstream's installation manifests, read from the pinned aad-pod-identity module at run time
//! (never copied into this repository) and rendered for one [`IdentityDeployment`]: podid's
//! images, extra flags, namespace and cloud access patched in, upstream's RBAC, service
//! accounts, security contexts and probes left exactly as released. That is the point of
//! running them: NMI and MIC with the rights upstream gives them, not admin credentials.

mod checks;
mod pod_template;
mod render;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::deployment::{IdentityDeployment, Mode, WorkloadRef};
use crate::error::InclusterError;
use crate::object::{ObjectKey, kind_of, name_of};

pub use checks::{KUBENET_MARKER, nmi_accepts_kubelet_config, verify_module};
pub use render::render;

/// Standard mode: NMI, MIC, RBAC and CRDs, MIC configured from a Secret through environment
/// variables (so no node needs an `azure.json`).
pub const STANDARD_MANIFEST: &str = "deploy/infra/noazurejson/deployment-rbac.yaml";
/// Managed mode: NMI only, in managed mode, with its RBAC and the CRDs.
pub const MANAGED_MANIFEST: &str = "deploy/infra/managed-mode-deployment.yaml";

/// Name of NMI's container in upstream's DaemonSet (how the DaemonSet is recognised).
pub const NMI_CONTAINER: &str = "nmi";
/// Name of MIC's container in upstream's Deployment (how the Deployment is recognised).
pub const MIC_CONTAINER: &str = "mic";

/// Where the manifest for `mode` is inside the aad-pod-identity module directory.
pub fn manifest_path(module_dir: &Path, mode: Mode) -> PathBuf {
    module_dir.join(match mode {
        Mode::Managed => MANAGED_MANIFEST,
        Mode::Standard => STANDARD_MANIFEST,
    })
}

/// A multi-document manifest, each document as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// The documents, empty ones dropped.
    pub documents: Vec<Value>,
}

impl Manifest {
    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, InclusterError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InclusterError::io(format!("reading {}", path.display()), e))?;
        Self::parse(&text, path)
    }

    /// Reads the manifest for `mode` from the aad-pod-identity module directory.
    pub fn for_mode(module_dir: &Path, mode: Mode) -> Result<Self, InclusterError> {
        Self::load(&manifest_path(module_dir, mode))
    }

    /// Parses multi-document YAML; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, InclusterError> {
        let documents: Vec<Value> =
            serde_saphyr::from_str_multiple(text).map_err(|e| InclusterError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let documents: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
        for document in &documents {
            ObjectKey::of(document).map_err(|problem| InclusterError::Parse {
                path: path.to_path_buf(),
                message: problem,
            })?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            documents,
        })
    }
}

/// Reads the manifest for `request.mode` from `module_dir` and renders it.
pub fn render_from_module(
    module_dir: &Path,
    request: &IdentityDeployment,
) -> Result<RenderedDeployment, InclusterError> {
    render(&Manifest::for_mode(module_dir, request.mode)?, request)
}

/// Upstream's objects rendered for one request, ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedDeployment {
    pub mode: Mode,
    /// Namespace of the workloads, service accounts and podid's ConfigMap/Secret.
    pub namespace: String,
    /// Every object, in the manifest's order (podid's own additions first and last); apply
    /// sorts them by dependency.
    pub objects: Vec<Value>,
    /// NMI's DaemonSet.
    pub nmi: WorkloadRef,
    /// MIC's Deployment, in standard mode.
    pub mic: Option<WorkloadRef>,
    /// The manifest this came from.
    pub source: PathBuf,
}

impl RenderedDeployment {
    /// NMI, then MIC if present.
    pub fn workloads(&self) -> Vec<WorkloadRef> {
        std::iter::once(self.nmi.clone())
            .chain(self.mic.clone())
            .collect()
    }

    /// Keys of all objects, in the order of [`RenderedDeployment::objects`].
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.objects
            .iter()
            .filter_map(|o| ObjectKey::of(o).ok())
            .collect()
    }

    /// Names of the CRDs among the objects.
    pub fn crd_names(&self) -> Vec<String> {
        self.objects_of_kind("CustomResourceDefinition")
            .map(|o| name_of(o).to_string())
            .collect()
    }

    /// Objects of one kind.
    pub fn objects_of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> {
        self.objects.iter().filter(move |o| kind_of(o) == kind)
    }

    /// The rendered object with this kind and name.
    pub fn object(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| kind_of(o) == kind && name_of(o) == name)
    }

    /// The rendered objects as one multi-document YAML text (to save with a run's diagnostics
    /// or to apply by hand).
    pub fn to_yaml(&self) -> Result<String, InclusterError> {
        let mut text = String::new();
        for object in &self.objects {
            let doc = serde_saphyr::to_string(object)
                .map_err(|e| InclusterError::render("the rendered objects", e.to_string()))?;
            text.push_str("---\n");
            text.push_str(&doc);
        }
        Ok(text)
    }
}
