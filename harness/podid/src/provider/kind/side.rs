//! What the kind provider adds to the shared cluster side: node commands through `docker exec`
//! into the node containers, and a teardown that deletes the cluster (or, with `--keep`, leaves
//! it without NMI/MIC and the metadata redirect, whose mock cloud ends with the run, but with
//! the guard that keeps its nodes from any real metadata service).

use std::sync::Mutex;

use podid_kind::{Docker, KindCluster};
use podid_mocks::ServerHandle;

use super::node_guard;
use crate::provider::cluster::ShutdownReport;
use crate::provider::error::ProviderError;
use crate::provider::kube_cluster::{NodeShell, Teardown};

/// Runs commands in node containers through `docker exec`.
pub struct DockerNodes(pub Docker);

#[async_trait::async_trait]
impl NodeShell for DockerNodes {
    async fn run(&self, node: &str, argv: &[String]) -> Result<String, ProviderError> {
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.0.exec(node, &args).await.map_err(|e| {
            ProviderError::new(format!("running `{}` in node {node}", argv.join(" ")), e)
        })
    }
}

/// Deletes the kind cluster and stops the mock cloud's servers on its network.
pub struct KindTeardown {
    pub cluster: tokio::sync::Mutex<Option<KindCluster>>,
    pub shell: DockerNodes,
    /// Every node container, control plane included.
    pub containers: Vec<String>,
    pub servers: Mutex<Vec<ServerHandle>>,
    pub keep: bool,
    /// Images a kept cluster holds, for the command that runs the existing provider on it.
    pub workload_image: String,
    pub nmi_image: String,
    pub mic_image: String,
}

#[async_trait::async_trait]
impl Teardown for KindTeardown {
    fn cluster_outlives_run(&self) -> bool {
        // A kept cluster must not keep an NMI whose metadata redirect and mock cloud are gone.
        self.keep
    }

    async fn teardown(&self, report: &mut ShutdownReport) {
        let servers = std::mem::take(&mut *self.servers.lock().expect("server list lock"));
        let Some(cluster) = self.cluster.lock().await.take() else {
            return;
        };
        if self.keep {
            for container in &self.containers {
                if let Err(e) = node_guard::remove_redirect(&self.shell, container).await {
                    report.errors.push(crate::provider::error_chain(&e));
                }
            }
            // Absolute: the variables are read from other directories (a test's working
            // directory is its package's), where a path relative to this one names nothing.
            let kubeconfig = std::path::absolute(cluster.kubeconfig())
                .unwrap_or_else(|_| cluster.kubeconfig().to_path_buf());
            let env_file = kubeconfig.with_file_name("existing.env");
            let vars = format!(
                "KUBECONFIG={}\nPODID_CLOUD=mock\nPODID_WORKLOAD_IMAGE={}\nPODID_NMI_IMAGE={}\nPODID_MIC_IMAGE={}\n",
                kubeconfig.display(),
                self.workload_image,
                self.nmi_image,
                self.mic_image
            );
            if let Err(e) = std::fs::write(&env_file, vars) {
                report
                    .errors
                    .push(format!("writing {}: {e}", env_file.display()));
            }
            eprintln!(
                "podid: kept kind cluster {} without NMI/MIC (kubeconfig {}); run the existing provider on it with\n  podid run --provider existing --kubeconfig {} --cloud mock --workload-image {} --nmi-image {} --mic-image {}\n(the same settings as variables: {}) and remove it with `podid clean`",
                cluster.name(),
                kubeconfig.display(),
                kubeconfig.display(),
                self.workload_image,
                self.nmi_image,
                self.mic_image,
                env_file.display(),
            );
        } else {
            let name = cluster.name().to_string();
            match cluster.delete().await {
                Ok(()) => report
                    .stopped
                    .push(format!("kind cluster {name} and its network")),
                Err(e) => report
                    .errors
                    .push(format!("deleting kind cluster {name}: {e}")),
            }
        }
        for server in servers {
            server.shutdown().await;
        }
    }
}
