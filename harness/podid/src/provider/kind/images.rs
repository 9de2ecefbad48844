//! The images a kind run loads into its nodes, built locally from what the toolchain built:
//! NMI on a small Debian root with iptables (as upstream's image is), MIC on an empty base (as
//! upstream's distroless one), and the workload image holding the probe. Tags carry a hash of
//! their content, so an unchanged image is neither rebuilt nor reloaded.

use std::path::Path;

use podid_kind::{Docker, ImageBase, ImageSpec, Progress, RootfsSpec, ensure_image};

use crate::provider::ProbeCommand;
use crate::provider::error::ProviderError;

/// Where the probe program lives in the workload image.
const PROBE_DIR: &str = "/usr/local/bin";

/// The images of a run, by tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunImages {
    pub nmi: String,
    pub mic: String,
    pub workload: String,
    /// What runs the probe inside the workload image (program and leading arguments).
    pub probe: Vec<String>,
    /// The images podid built (and must load); a user's own images are not among them.
    pub built: Vec<String>,
}

/// What the images are made of.
pub struct ImageInputs<'a> {
    pub nmi_binary: &'a Path,
    pub mic_binary: &'a Path,
    pub probe: &'a ProbeCommand,
    /// A user's own NMI or MIC image, used as given.
    pub nmi_image: Option<&'a str>,
    pub mic_image: Option<&'a str>,
}

fn err(action: &str) -> impl FnOnce(podid_kind::KindError) -> ProviderError + '_ {
    move |e| ProviderError::new(action, e)
}

/// Builds (or finds) every image of the run.
pub async fn ensure_run_images(
    docker: &Docker,
    inputs: &ImageInputs<'_>,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<RunImages, ProviderError> {
    let root = podid_kind::ensure_root_image(docker, &RootfsSpec::iptables(), cache_dir, progress)
        .await
        .map_err(err("building the Debian root of the NMI image"))?;
    let mut built = Vec::new();
    let nmi = match inputs.nmi_image {
        Some(own) => own.to_string(),
        None => {
            let spec = ImageSpec::new("", ImageBase::Image(root.tag.clone()))
                .file(inputs.nmi_binary, "/usr/local/bin/nmi", 0o755)
                .entrypoint(["/usr/local/bin/nmi"])
                .with_content_tag("podid/nmi")
                .map_err(err("hashing the NMI image"))?;
            ensure_image(docker, &spec, progress)
                .await
                .map_err(err("building the NMI image"))?;
            built.push(spec.tag.clone());
            spec.tag
        }
    };
    let mic = match inputs.mic_image {
        Some(own) => own.to_string(),
        None => {
            let spec = ImageSpec::new("", ImageBase::Scratch)
                .file(inputs.mic_binary, "/bin/mic", 0o755)
                .entrypoint(["/bin/mic"])
                .with_content_tag("podid/mic")
                .map_err(err("hashing the MIC image"))?;
            ensure_image(docker, &spec, progress)
                .await
                .map_err(err("building the MIC image"))?;
            built.push(spec.tag.clone());
            spec.tag
        }
    };
    let workload = ensure_workload_image(docker, inputs.probe, cache_dir, progress).await?;
    built.push(workload.tag.clone());
    let probe = workload.probe;
    Ok(RunImages {
        nmi,
        mic,
        workload: workload.tag,
        probe,
        built,
    })
}

/// The workload image as built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadImage {
    pub tag: String,
    /// What runs the probe inside it (program and leading arguments).
    pub probe: Vec<String>,
}

/// The podid binary beside the probe, when there is one: it serves the mock cloud and the
/// metadata redirect when the image runs in an existing cluster (`podid mock …`).
fn podid_beside(probe: &ProbeCommand) -> Option<std::path::PathBuf> {
    if probe.program.file_name().is_some_and(|n| n == "podid") {
        return Some(probe.program.clone());
    }
    let podid = probe.program.with_file_name("podid");
    podid.is_file().then_some(podid)
}

/// Builds (or finds) the workload image: a Debian root with iptables and curl, the probe, and
/// the podid binary (so the same image serves workload pods, the in-cluster mock cloud and the
/// node agents). Tagged `podid/workload:<content hash>`.
pub async fn ensure_workload_image(
    docker: &Docker,
    probe: &ProbeCommand,
    cache_dir: &Path,
    progress: &dyn Progress,
) -> Result<WorkloadImage, ProviderError> {
    let root = podid_kind::ensure_root_image(docker, &workload_root(), cache_dir, progress)
        .await
        .map_err(err("building the Debian root of the workload image"))?;
    let file_name = probe
        .program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "podid-probe".into());
    let probe_path = format!("{PROBE_DIR}/{file_name}");
    // The root is the same Debian release podid is built on, so its C library serves the probe.
    let mut spec = ImageSpec::new("", ImageBase::Image(root.tag.clone()))
        .file(&probe.program, probe_path.clone(), 0o755)
        .entrypoint(["sleep", "infinity"]);
    if let Some(podid) = podid_beside(probe).filter(|p| *p != probe.program) {
        spec = spec.file(podid, format!("{PROBE_DIR}/podid"), 0o755);
    }
    let spec = spec
        .with_content_tag("podid/workload")
        .map_err(err("hashing the workload image"))?;
    ensure_image(docker, &spec, progress)
        .await
        .map_err(err("building the workload image"))?;
    Ok(WorkloadImage {
        tag: spec.tag,
        probe: std::iter::once(probe_path)
            .chain(probe.args.iter().cloned())
            .collect(),
    })
}

/// The workload image's root: iptables for the node agent's metadata redirect, curl for
/// reading NMI's and MIC's health from a node.
fn workload_root() -> RootfsSpec {
    RootfsSpec::new(
        "workload",
        &["iptables", "conntrack", "ca-certificates", "curl"],
    )
}
