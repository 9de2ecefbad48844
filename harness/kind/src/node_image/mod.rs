//! The kind node image, built locally the way `kind build node-image` builds it, but from
//! inputs on this machine only: a debootstrapped base root (instead of kind's base image), kind's
//! node files from its module directory, locally built Kubernetes binaries, and component images
//! preloaded into the node's containerd store (kind does not import image archives when a node
//! starts, so they must be in the store already). The image's tag carries a hash of every input;
//! an unchanged set of inputs reuses the image.

mod components;
mod kind_files;
mod patch;
mod pause;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use components::ComponentImage;
pub use pause::PauseInput;

use crate::cache::{CacheLock, Fingerprint};
use crate::docker::{Docker, RunSpec};
use crate::error::{KindError, Result};
use crate::progress::{Outcome, Phase, Progress};
use crate::rootfs::{RootfsSpec, ensure_root_image};
use crate::shim::shell_quote;

/// Bump when the node image's assembly changes in a way the key does not already see (the
/// patches, set-up script and component PATH are hashed), so older images are not reused.
const NODE_IMAGE_REVISION: &str = "r1";

/// Label on build containers, so leftovers of a killed build can be found.
pub const BUILD_LABEL: &str = "podid.kind.build";

/// Where the component image archive is staged inside the build container.
const ARCHIVE_IN_NODE: &str = "/kind/podid-images.tar";

/// Everything a node image is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeImageInputs {
    /// The Kubernetes release the binaries are, e.g. `v1.36.3`.
    pub kubernetes_version: String,
    /// `kubeadm`.
    pub kubeadm: PathBuf,
    /// `kubelet`.
    pub kubelet: PathBuf,
    /// `kubectl`.
    pub kubectl: PathBuf,
    /// `kube-proxy`.
    pub kube_proxy: PathBuf,
    /// `kube-scheduler`.
    pub kube_scheduler: PathBuf,
    /// `kube-controller-manager`.
    pub kube_controller_manager: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `coredns`.
    pub coredns: PathBuf,
    /// `crictl`, optional: kind uses it only to skip loading images a node already has.
    pub crictl: Option<PathBuf>,
    /// The `sigs.k8s.io/kind` module directory (it holds `images/base/files`).
    pub kind_module_dir: PathBuf,
    /// The pause binary or its source.
    pub pause: PauseInput,
}

/// A node image that exists locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeImage {
    /// Its tag, `podid-kind/node:<version>-<hash>`.
    pub tag: String,
    /// Whether this call built it.
    pub built: bool,
    /// How long this call took.
    pub took: Duration,
    /// Its size in bytes, as docker reports it.
    pub size: u64,
    /// The component images preloaded into it (empty when it was cached).
    pub components: Vec<ComponentImage>,
}

impl NodeImageInputs {
    fn binaries(&self) -> Vec<(&'static str, &Path)> {
        let mut list = vec![
            ("kubeadm", self.kubeadm.as_path()),
            ("kubelet", self.kubelet.as_path()),
            ("kubectl", self.kubectl.as_path()),
            ("kube-proxy", self.kube_proxy.as_path()),
            ("kube-scheduler", self.kube_scheduler.as_path()),
            (
                "kube-controller-manager",
                self.kube_controller_manager.as_path(),
            ),
            ("kube-apiserver", self.kube_apiserver.as_path()),
            ("etcd", self.etcd.as_path()),
            ("coredns", self.coredns.as_path()),
        ];
        if let Some(crictl) = &self.crictl {
            list.push(("crictl", crictl.as_path()));
        }
        list
    }

    /// Fails with [`KindError::MissingInput`] for the first input that does not exist.
    pub fn check(&self) -> Result<()> {
        for (name, path) in self.binaries() {
            if !path.is_file() {
                return Err(KindError::MissingInput {
                    what: format!("the {name} binary"),
                    path: path.to_owned(),
                });
            }
        }
        if !self.pause.path().is_file() {
            return Err(KindError::MissingInput {
                what: "the pause binary or source".to_owned(),
                path: self.pause.path().to_owned(),
            });
        }
        kind_files::files_dir(&self.kind_module_dir).map(drop)
    }

    /// The hash in the node image's tag: every binary's contents, kind's node files, the pause
    /// input, both roots' keys, this crate's patches and the assembly revision.
    pub fn cache_key(&self) -> Result<String> {
        let mut fp = Fingerprint::new("node-image");
        fp.add_str("revision", NODE_IMAGE_REVISION)
            .add_str("kubernetes", &self.kubernetes_version)
            .add_str("node-root", &RootfsSpec::kind_node().cache_key())
            .add_str("iptables-root", &RootfsSpec::iptables().cache_key())
            .add_str("entrypoint-patch", patch::WRITABLE_MOUNTS)
            .add_str("setup-script", &setup_script(&[]))
            .add_str("component-path", components::PATH);
        for (name, path) in self.binaries() {
            fp.add_file(name, path)?;
        }
        match &self.pause {
            PauseInput::Source(p) => fp.add_file("pause-source", p)?,
            PauseInput::Binary(p) => fp.add_file("pause-binary", p)?,
        };
        fp.add_tree("kind-files", &kind_files::files_dir(&self.kind_module_dir)?)?;
        Ok(fp.hex(16))
    }

    /// The node image's tag for these inputs.
    pub fn image_tag(&self) -> Result<String> {
        Ok(format!(
            "podid-kind/node:{}-{}",
            self.kubernetes_version,
            self.cache_key()?
        ))
    }
}

/// The node image for `inputs`, built unless an image with its tag exists. Roots, the pause
/// binary and component images are cached under `cache_dir` and in docker as they are built.
pub async fn ensure_node_image(
    docker: &Docker,
    inputs: &NodeImageInputs,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<NodeImage> {
    let started = Instant::now();
    inputs.check()?;
    let tag = {
        let inputs = inputs.clone();
        tokio::task::spawn_blocking(move || inputs.image_tag())
            .await
            .map_err(|e| KindError::invalid("hashing the node image's inputs", e.to_string()))??
    };
    if let Some(found) = cached(docker, &tag, started, progress).await? {
        return Ok(found);
    }
    let _lock = CacheLock::acquire(cache_dir.join("node-image.lock")).await?;
    if let Some(found) = cached(docker, &tag, started, progress).await? {
        return Ok(found);
    }
    let components = build(docker, inputs, &tag, cache_dir, progress).await?;
    let size = docker
        .image_inspect(&tag)
        .await?
        .map(|i| i.size)
        .unwrap_or_default();
    Ok(NodeImage {
        tag,
        built: true,
        took: started.elapsed(),
        size,
        components,
    })
}

async fn cached(
    docker: &Docker,
    tag: &str,
    started: Instant,
    progress: &dyn Progress,
) -> Result<Option<NodeImage>> {
    let Some(info) = docker.image_inspect(tag).await? else {
        return Ok(None);
    };
    progress.finished(&Phase::NodeImage, Outcome::Cached, started.elapsed());
    Ok(Some(NodeImage {
        tag: tag.to_owned(),
        built: false,
        took: started.elapsed(),
        size: info.size,
        components: Vec::new(),
    }))
}

async fn build(
    docker: &Docker,
    inputs: &NodeImageInputs,
    tag: &str,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<ComponentImage>> {
    let base = ensure_root_image(docker, &RootfsSpec::kind_node(), cache_dir, progress).await?;
    let iptables = ensure_root_image(docker, &RootfsSpec::iptables(), cache_dir, progress).await?;

    let sandbox = kind_files::sandbox_image(&inputs.kind_module_dir)?;
    let pause_version = sandbox.rsplit(':').next().unwrap_or("unknown").to_owned();
    let pause = pause::ensure_pause(&inputs.pause, &pause_version, cache_dir, progress).await?;

    let phase = Phase::ComponentImages;
    let components_started = Instant::now();
    progress.started(&phase);
    let required = components::kubeadm_images(inputs).await?;
    let components = components::build_components(
        docker,
        inputs,
        &required,
        &sandbox,
        &pause,
        &iptables.tag,
        progress,
    )
    .await?;
    progress.finished(&phase, Outcome::Done, components_started.elapsed());

    let phase = Phase::NodeImage;
    let node_started = Instant::now();
    progress.started(&phase);
    let work = tempfile::Builder::new()
        .prefix("node-image-")
        .tempdir_in(ensure_dir(cache_dir)?)
        .map_err(KindError::io("creating a work directory in", cache_dir))?;
    let stage = work.path().join("root");
    stage_node_files(inputs, &stage)?;
    save_components(
        docker,
        &components,
        &stage.join(ARCHIVE_IN_NODE.trim_start_matches('/')),
    )
    .await?;
    kind_files::normalise_dirs(&stage)?;

    let container = format!("podid-kind-build-{}", std::process::id());
    docker.rm(&container).await?;
    let assembled = assemble(
        docker,
        &base.tag,
        &container,
        &stage,
        inputs,
        &components,
        tag,
    )
    .await;
    let removed = docker.rm(&container).await;
    assembled?;
    removed?;
    progress.finished(&phase, Outcome::Done, node_started.elapsed());
    Ok(components)
}

fn ensure_dir(dir: &Path) -> Result<&Path> {
    std::fs::create_dir_all(dir).map_err(KindError::io("creating", dir))?;
    Ok(dir)
}

/// kind's files, the node's Kubernetes binaries (where kind's units expect them) and
/// `/kind/version`.
fn stage_node_files(inputs: &NodeImageInputs, stage: &Path) -> Result<()> {
    kind_files::stage_kind_files(&inputs.kind_module_dir, stage)?;
    for (name, path) in [
        ("kubeadm", &inputs.kubeadm),
        ("kubelet", &inputs.kubelet),
        ("kubectl", &inputs.kubectl),
    ] {
        kind_files::copy_file(path, &stage.join("usr/bin").join(name), 0o755)?;
    }
    if let Some(crictl) = &inputs.crictl {
        kind_files::copy_file(crictl, &stage.join("usr/local/bin/crictl"), 0o755)?;
    }
    kind_files::write_file(
        &stage.join("kind/version"),
        inputs.kubernetes_version.as_bytes(),
        0o644,
    )
}

/// Saves all component images into one archive, under their content-addressed tags; they get
/// the names the node knows them by inside the node's store (see [`setup_script`]), so no
/// `registry.k8s.io/…` tag on the host ever points at podid's builds.
async fn save_components(
    docker: &Docker,
    components: &[ComponentImage],
    archive: &Path,
) -> Result<()> {
    if let Some(parent) = archive.parent() {
        ensure_dir(parent)?;
    }
    let tags: Vec<String> = components.iter().map(|c| c.built_tag.clone()).collect();
    docker.save(&tags, archive).await
}

/// Starts a build container from the base root, adds the staged files, runs the set-up script
/// (systemd units, runtime links, containerd's base spec, image preload) and commits it.
async fn assemble(
    docker: &Docker,
    base: &str,
    container: &str,
    stage: &Path,
    inputs: &NodeImageInputs,
    components: &[ComponentImage],
    tag: &str,
) -> Result<()> {
    docker
        .run(&RunSpec {
            image: base.to_owned(),
            name: Some(container.to_owned()),
            entrypoint: Some("sleep".to_owned()),
            cmd: vec!["infinity".to_owned()],
            labels: vec![(BUILD_LABEL.to_owned(), std::process::id().to_string())],
            network: Some("none".to_owned()),
            detach: true,
            ..RunSpec::default()
        })
        .await?;
    docker.copy_in(&stage.join("."), container, "/").await?;
    docker
        .exec_script(
            container,
            "setting up the node image",
            &setup_script(components),
        )
        .await?;
    // `docker commit --change` cannot set STOPSIGNAL on every Engine, so the image's metadata
    // comes from a one-line build on top of the committed file system.
    let assembled = format!("{tag}-files");
    docker.commit(container, &assembled, &[]).await?;
    let metadata = format!(
        "FROM {assembled}\n\
         ENTRYPOINT [\"/usr/local/bin/entrypoint\", \"/sbin/init\"]\n\
         CMD []\n\
         # systemd reads this to know it runs in a container.\n\
         ENV container=docker\n\
         # systemd shuts down on SIGRTMIN+3; SIGTERM would make it re-execute.\n\
         STOPSIGNAL SIGRTMIN+3\n\
         LABEL podid.kind.node-image={}\n",
        inputs.kubernetes_version
    );
    let context = tempfile::Builder::new()
        .prefix("node-image-metadata-")
        .tempdir()
        .map_err(KindError::io(
            "creating a build context in",
            std::env::temp_dir(),
        ))?;
    let dockerfile = context.path().join("Dockerfile");
    std::fs::write(&dockerfile, metadata).map_err(KindError::io("writing", &dockerfile))?;
    let built = docker.build(context.path(), tag).await;
    docker.untag(std::slice::from_ref(&assembled)).await?;
    built
}

/// The script run in the build container. It does what kind's base image build and
/// `kind build node-image` do, adapted to Debian's packaging of the runtime; `components` are
/// renamed in the node's store from their podid tags to the names kubeadm and containerd use.
fn setup_script(components: &[ComponentImage]) -> String {
    let mut names = String::new();
    for c in components {
        // `ctr import` stores short docker names under docker.io.
        let imported = shell_quote(&format!("docker.io/{}", c.built_tag));
        for name in &c.names {
            names.push_str(&format!(
                "ctr --namespace=k8s.io images tag --force {imported} {}\n",
                shell_quote(name)
            ));
        }
        names.push_str(&format!(
            "ctr --namespace=k8s.io images rm {imported} >/dev/null\n"
        ));
    }
    format!(
        r#"
chmod 0755 /kind /kind/bin

# Only the units a node needs start at boot: drop every unit the packages enabled, plus
# tmpfiles set-up and udev/initctl sockets, then enable the runtime and the kubelet.
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
for wants in /lib/systemd/system/multi-user.target.wants /lib/systemd/system/local-fs.target.wants \
             /lib/systemd/system/basic.target.wants /etc/systemd/system/*.wants; do
  if [ -d "$wants" ]; then find "$wants" -mindepth 1 -maxdepth 1 -delete; fi
done
find /lib/systemd/system/sockets.target.wants/ \( -name '*udev*' -o -name '*initctl*' \) -delete
echo ReadKMsg=no >> /etc/systemd/journald.conf
ln -sf /usr/lib/systemd/systemd /sbin/init
systemctl enable kubelet.service containerd.service undo-mount-hacks.service
systemctl mask systemd-binfmt.service
mkdir -p /etc/kubernetes/manifests

# Debian installs containerd in /usr/bin and the CNI plugins in /usr/lib/cni; kind's units
# and containerd's defaults look in /usr/local/bin and /opt/cni/bin.
for b in containerd containerd-shim-runc-v2 ctr; do ln -sf "/usr/bin/$b" "/usr/local/bin/$b"; done
mkdir -p /opt/cni/bin
for plugin in /usr/lib/cni/*; do ln -sf "$plugin" /opt/cni/bin/; done

# The base OCI spec for pods: containerd's default without rlimits, plus kind's hook that
# gives each container the node's product name and uuid.
ctr oci spec \
  | jq '.hooks.createContainer = ((.hooks.createContainer // []) + [{{"path": "/kind/bin/mount-product-files.sh"}}]) | del(.process.rlimits)' \
  > /etc/containerd/cri-base.json

# Preload the component images into containerd's store, unpacked on first use.
containerd --log-level=warn >/var/log/podid-containerd-build.log 2>&1 &
containerd_pid=$!
for _ in $(seq 1 100); do
  if [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1; then break; fi
  sleep 0.1
done
ctr version >/dev/null || {{ cat /var/log/podid-containerd-build.log >&2; exit 1; }}
ctr --namespace=k8s.io images import --all-platforms --no-unpack {archive}
{names}for image in $(ctr --namespace=k8s.io images list --quiet); do
  ctr --namespace=k8s.io images label "$image" io.cri-containerd.pinned=pinned >/dev/null
done
ctr --namespace=k8s.io images list --quiet
kill "$containerd_pid"
wait "$containerd_pid" || true
rm -rf {archive} /var/log/podid-containerd-build.log /run/containerd
"#,
        archive = ARCHIVE_IN_NODE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components() -> Vec<ComponentImage> {
        vec![ComponentImage {
            built_tag: "podid-kind/component-pause:abc".into(),
            names: vec![
                "registry.k8s.io/pause:3.10".into(),
                "registry.k8s.io/pause:3.10.2".into(),
            ],
        }]
    }

    #[test]
    fn setup_script_renames_components_in_the_nodes_store() {
        let script = setup_script(&components());
        let import = script.find("images import").unwrap();
        let tag = script
            .find("images tag --force 'docker.io/podid-kind/component-pause:abc' 'registry.k8s.io/pause:3.10.2'")
            .unwrap();
        let rm = script
            .find("images rm 'docker.io/podid-kind/component-pause:abc'")
            .unwrap();
        assert!(import < tag && tag < rm);
    }

    #[test]
    fn setup_script_is_valid_bash() {
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", &setup_script(&components())])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
