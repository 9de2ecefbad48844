//! A thin handle over the docker CLI. The CLI (rather than the Engine API) is what kind itself
//! drives, so using it here means one client, one configuration (DOCKER_HOST, contexts) and one
//! set of behaviours for everything podid does with containers.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{KindError, Result};
use crate::net::Ipv4Cidr;
use crate::process::Cmd;
use crate::shim::PRIVILEGED_REPLACEMENT;

/// The docker CLI, as found on PATH or at an explicit path.
#[derive(Debug, Clone)]
pub struct Docker {
    program: PathBuf,
}

impl Default for Docker {
    fn default() -> Self {
        Self::new()
    }
}

/// How this host lets a container do what `--privileged` grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivilegedMode {
    /// `--privileged` works as it should.
    Native,
    /// `--privileged` is refused (the daemon lacks a capability it would grant); the
    /// [replacement flags](crate::shim::PRIVILEGED_REPLACEMENT) work instead.
    Replaced,
}

impl PrivilegedMode {
    /// The `docker run` flags that give a container this mode's privileges.
    pub fn run_flags(self) -> Vec<String> {
        match self {
            PrivilegedMode::Native => vec!["--privileged".to_owned()],
            PrivilegedMode::Replaced => PRIVILEGED_REPLACEMENT
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// What `docker run` should start.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// The image.
    pub image: String,
    /// `--name`.
    pub name: Option<String>,
    /// `--entrypoint`.
    pub entrypoint: Option<String>,
    /// Arguments after the image.
    pub cmd: Vec<String>,
    /// `--label k=v`.
    pub labels: Vec<(String, String)>,
    /// `--network`.
    pub network: Option<String>,
    /// Privileges, when the container needs them.
    pub privileged: Option<PrivilegedMode>,
    /// `--detach`: return the container id instead of waiting.
    pub detach: bool,
    /// `--rm`.
    pub remove: bool,
    /// Any further `docker run` flags, placed before the image.
    pub extra: Vec<String>,
}

/// A docker network as podid uses it: its bridge device, subnet and gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The network's name.
    pub name: String,
    /// The network's id.
    pub id: String,
    /// The host's bridge interface for this network (e.g. `br-0123456789ab`).
    pub bridge: String,
    /// The IPv4 subnet containers get addresses from.
    pub subnet: Ipv4Cidr,
    /// The host side's address on the bridge.
    pub gateway: Ipv4Addr,
    /// The network's labels.
    pub labels: BTreeMap<String, String>,
}

/// What podid needs to know about a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image id (`sha256:…`).
    pub id: String,
    /// Size in bytes, as docker reports it.
    pub size: u64,
    /// The image's labels.
    pub labels: BTreeMap<String, String>,
}

impl Docker {
    /// The `docker` found on PATH.
    pub fn new() -> Self {
        Self::with_program("docker")
    }

    /// A specific docker CLI binary.
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    /// A handle whose daemon answered; fails with [`KindError::NoDocker`] otherwise.
    pub async fn connect() -> Result<Self> {
        let docker = Self::new();
        docker.ping().await?;
        Ok(docker)
    }

    /// The CLI this handle runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The CLI's absolute path (searching PATH if needed); the docker shim execs it directly.
    pub fn resolved_program(&self) -> Result<PathBuf> {
        if self.program.components().count() > 1 {
            return Ok(self.program.clone());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(&self.program))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| KindError::NoDocker {
                detail: format!("`{}` is not on PATH", self.program.display()),
            })
    }

    pub(crate) fn cmd(&self, action: impl Into<String>) -> Cmd {
        Cmd::new(&self.program, action)
    }

    /// Checks that the daemon answers; returns its version.
    pub async fn ping(&self) -> Result<String> {
        let captured = self
            .cmd("asking the Docker daemon for its version")
            .args(["version", "--format", "{{.Server.Version}}"])
            .capture()
            .await
            .map_err(|e| KindError::NoDocker {
                detail: e.to_string(),
            })?;
        let version = captured.stdout.trim();
        if !captured.success || version.is_empty() {
            return Err(KindError::NoDocker {
                detail: captured.tail(),
            });
        }
        Ok(version.to_owned())
    }

    /// `docker run`; returns the container id when detached, else the container's stdout.
    pub async fn run(&self, spec: &RunSpec) -> Result<String> {
        let mut args: Vec<String> = vec!["run".into()];
        if spec.detach {
            args.push("--detach".into());
        }
        if spec.remove {
            args.push("--rm".into());
        }
        if let Some(name) = &spec.name {
            args.push(format!("--name={name}"));
        }
        if let Some(entrypoint) = &spec.entrypoint {
            args.push(format!("--entrypoint={entrypoint}"));
        }
        for (k, v) in &spec.labels {
            args.push(format!("--label={k}={v}"));
        }
        if let Some(network) = &spec.network {
            args.push(format!("--network={network}"));
        }
        if let Some(mode) = spec.privileged {
            args.extend(mode.run_flags());
        }
        args.extend(spec.extra.iter().cloned());
        args.push(spec.image.clone());
        args.extend(spec.cmd.iter().cloned());
        let out = self
            .cmd(format!("running a container from {}", spec.image))
            .args(&args)
            .output()
            .await?;
        Ok(out.trim().to_owned())
    }

    /// `docker exec` of `cmd` in `container`; returns its stdout.
    pub async fn exec(&self, container: &str, cmd: &[&str]) -> Result<String> {
        self.cmd(format!("running `{}` in {container}", cmd.join(" ")))
            .arg("exec")
            .arg(container)
            .args(cmd)
            .output()
            .await
    }

    /// `docker exec -i` with `stdin` fed from a file.
    pub async fn exec_with_stdin(
        &self,
        container: &str,
        cmd: &[&str],
        stdin: &Path,
    ) -> Result<String> {
        self.cmd(format!(
            "running `{}` in {container} with {} as input",
            cmd.join(" "),
            stdin.display()
        ))
        .args(["exec", "-i", container])
        .args(cmd)
        .stdin_file(stdin)
        .output()
        .await
    }

    /// Runs a bash script in `container` (fed on stdin, so it needs no quoting).
    pub async fn exec_script(&self, container: &str, action: &str, script: &str) -> Result<String> {
        self.cmd(format!("{action} (script in {container})"))
            .args(["exec", "-i", container, "bash", "-euo", "pipefail", "-s"])
            .stdin_bytes(script.as_bytes().to_vec())
            .output()
            .await
    }

    /// `docker cp host_path container:path`.
    pub async fn copy_in(&self, host_path: &Path, container: &str, path: &str) -> Result<()> {
        let mut target = OsString::from(container);
        target.push(":");
        target.push(path);
        self.cmd(format!(
            "copying {} into {container} at {path}",
            host_path.display()
        ))
        .arg("cp")
        .arg(host_path)
        .arg(target)
        .run()
        .await
    }

    /// Removes a container and its anonymous volumes; a missing container is not an error.
    pub async fn rm(&self, container: &str) -> Result<()> {
        let captured = self
            .cmd(format!("removing container {container}"))
            .args(["rm", "--force", "--volumes", container])
            .capture()
            .await?;
        if captured.success || captured.stderr.contains("No such container") {
            Ok(())
        } else {
            Err(KindError::Command {
                action: format!("removing container {container}"),
                command: format!("docker rm --force --volumes {container}"),
                status: captured.status.clone(),
                output: captured.tail(),
            })
        }
    }

    /// Names of containers (running or not) matching all `filters` (`docker ps --filter`).
    pub async fn containers(&self, filters: &[String]) -> Result<Vec<String>> {
        let mut cmd =
            self.cmd("listing containers")
                .args(["ps", "--all", "--format", "{{.Names}}"]);
        for f in filters {
            cmd = cmd.arg("--filter").arg(f);
        }
        Ok(lines(&cmd.output().await?))
    }

    /// A container's IPv4 address on `network`.
    pub async fn container_ip(&self, container: &str, network: &str) -> Result<Ipv4Addr> {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        let out = self
            .cmd(format!("reading the address of {container} on {network}"))
            .args(["inspect", "--format", &format, container])
            .output()
            .await?;
        out.trim().parse().map_err(|_| {
            KindError::invalid(
                format!("reading the address of {container} on {network}"),
                format!("`{}` is not an IPv4 address", out.trim()),
            )
        })
    }

    /// A container's labels.
    pub async fn container_labels(&self, container: &str) -> Result<BTreeMap<String, String>> {
        let out = self
            .cmd(format!("reading the labels of {container}"))
            .args(["inspect", "--format", "{{json .Config.Labels}}", container])
            .output()
            .await?;
        let labels: Option<BTreeMap<String, String>> =
            serde_json::from_str(out.trim()).map_err(|e| {
                KindError::invalid(format!("reading the labels of {container}"), e.to_string())
            })?;
        Ok(labels.unwrap_or_default())
    }

    /// Creates a bridge network with a fixed subnet and gateway and the given labels.
    pub async fn network_create(
        &self,
        name: &str,
        subnet: Ipv4Cidr,
        gateway: Ipv4Addr,
        labels: &[(String, String)],
    ) -> Result<NetworkInfo> {
        let mut cmd = self
            .cmd(format!("creating docker network {name} ({subnet})"))
            .args(["network", "create", "--driver=bridge"])
            .arg(format!("--subnet={subnet}"))
            .arg(format!("--gateway={gateway}"))
            // kind's own networks set this: node containers rely on masquerade to the outside.
            .arg("--opt=com.docker.network.bridge.enable_ip_masquerade=true");
        for (k, v) in labels {
            cmd = cmd.arg(format!("--label={k}={v}"));
        }
        cmd.arg(name).run().await?;
        self.network_inspect(name).await
    }

    /// Describes a network; fails if it does not exist or has no IPv4 subnet.
    pub async fn network_inspect(&self, name: &str) -> Result<NetworkInfo> {
        let action = format!("inspecting docker network {name}");
        let out = self
            .cmd(action.clone())
            .args(["network", "inspect", "--format", "{{json .}}", name])
            .output()
            .await?;
        parse_network(&action, out.trim())
    }

    /// Every network's IPv4 subnets (to pick a free one).
    pub async fn network_subnets(&self) -> Result<Vec<Ipv4Cidr>> {
        let names = self.networks(&[]).await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .cmd("reading the subnets of docker networks")
            .args([
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
            ])
            .args(&names)
            .output()
            .await?;
        Ok(out
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect())
    }

    /// Names of networks matching all `filters` (`docker network ls --filter`).
    pub async fn networks(&self, filters: &[String]) -> Result<Vec<String>> {
        let mut cmd =
            self.cmd("listing docker networks")
                .args(["network", "ls", "--format", "{{.Name}}"]);
        for f in filters {
            cmd = cmd.arg("--filter").arg(f);
        }
        Ok(lines(&cmd.output().await?))
    }

    /// Removes a network; a missing network is not an error.
    pub async fn network_rm(&self, name: &str) -> Result<()> {
        let captured = self
            .cmd(format!("removing docker network {name}"))
            .args(["network", "rm", name])
            .capture()
            .await?;
        if captured.success || captured.stderr.contains("not found") {
            Ok(())
        } else {
            Err(KindError::Command {
                action: format!("removing docker network {name}"),
                command: format!("docker network rm {name}"),
                status: captured.status.clone(),
                output: captured.tail(),
            })
        }
    }

    /// `docker import` of a root tarball as `tag`, with Dockerfile-style `changes`.
    pub async fn import(&self, tarball: &Path, tag: &str, changes: &[String]) -> Result<()> {
        let mut cmd = self
            .cmd(format!("importing {} as {tag}", tarball.display()))
            .arg("import");
        for c in changes {
            cmd = cmd.arg("--change").arg(c);
        }
        cmd.arg(tarball).arg(tag).run().await
    }

    /// `docker commit` of a container as `tag`, with Dockerfile-style `changes`.
    pub async fn commit(&self, container: &str, tag: &str, changes: &[String]) -> Result<()> {
        let mut cmd = self
            .cmd(format!("committing {container} as {tag}"))
            .arg("commit");
        for c in changes {
            cmd = cmd.arg("--change").arg(c);
        }
        cmd.arg(container).arg(tag).run().await
    }

    /// `docker build` of a context directory (its `Dockerfile`) as `tag`.
    pub async fn build(&self, context: &Path, tag: &str) -> Result<()> {
        self.cmd(format!("building image {tag}"))
            // The classic builder is part of every Engine; BuildKit may be missing.
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "--quiet", "--tag", tag])
            .arg(context)
            .run()
            .await
    }

    /// `docker tag`.
    pub async fn tag(&self, source: &str, target: &str) -> Result<()> {
        self.cmd(format!("tagging {source} as {target}"))
            .args(["tag", source, target])
            .run()
            .await
    }

    /// Removes image tags (not images still tagged otherwise); missing tags are ignored.
    pub async fn untag(&self, tags: &[String]) -> Result<()> {
        for tag in tags {
            let captured = self
                .cmd(format!("removing tag {tag}"))
                .args(["rmi", "--no-prune", tag])
                .capture()
                .await?;
            if !captured.success && !captured.stderr.contains("No such image") {
                tracing::warn!(%tag, error = %captured.tail(), "could not remove image tag");
            }
        }
        Ok(())
    }

    /// `docker save` of `tags` into one archive.
    pub async fn save(&self, tags: &[String], archive: &Path) -> Result<()> {
        self.cmd(format!(
            "saving {} to {}",
            tags.join(", "),
            archive.display()
        ))
        .arg("save")
        .arg("--output")
        .arg(archive)
        .args(tags)
        .run()
        .await
    }

    /// Describes a local image, or `None` if there is none by that name.
    pub async fn image_inspect(&self, tag: &str) -> Result<Option<ImageInfo>> {
        let captured = self
            .cmd(format!("inspecting image {tag}"))
            .args(["image", "inspect", "--format", "{{json .}}", tag])
            .capture()
            .await?;
        if !captured.success {
            if captured.stderr.contains("No such image")
                || captured.stderr.contains("No such object")
            {
                return Ok(None);
            }
            return Err(KindError::Command {
                action: format!("inspecting image {tag}"),
                command: format!("docker image inspect {tag}"),
                status: captured.status.clone(),
                output: captured.tail(),
            });
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Raw {
            id: String,
            size: u64,
            config: Option<RawConfig>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct RawConfig {
            labels: Option<BTreeMap<String, String>>,
        }
        let raw: Raw = serde_json::from_str(captured.stdout.trim())
            .map_err(|e| KindError::invalid(format!("inspecting image {tag}"), e.to_string()))?;
        Ok(Some(ImageInfo {
            id: raw.id,
            size: raw.size,
            labels: raw.config.and_then(|c| c.labels).unwrap_or_default(),
        }))
    }

    /// Whether a local image has this tag.
    pub async fn image_exists(&self, tag: &str) -> Result<bool> {
        Ok(self.image_inspect(tag).await?.is_some())
    }

    /// How this host grants privileges, found by trying: a container from `probe_image`
    /// (which must contain `/bin/true`) is started with `--privileged`; if that fails, with the
    /// replacement flags. Neither working is an error carrying both failures.
    pub async fn privileged_mode(&self, probe_image: &str) -> Result<PrivilegedMode> {
        let attempt = |mode: PrivilegedMode| {
            let mut args = vec!["run".to_owned(), "--rm".to_owned()];
            args.extend(mode.run_flags());
            args.extend([
                "--entrypoint=/bin/true".to_owned(),
                "--network=none".to_owned(),
                probe_image.to_owned(),
            ]);
            self.cmd(format!(
                "checking whether privileged containers run ({mode:?})"
            ))
            .args(args)
            .capture()
        };
        let native = attempt(PrivilegedMode::Native).await?;
        if native.success {
            return Ok(PrivilegedMode::Native);
        }
        tracing::info!(
            error = %native.tail(),
            "docker run --privileged is refused here; trying the replacement flags"
        );
        let replaced = attempt(PrivilegedMode::Replaced).await?;
        if replaced.success {
            return Ok(PrivilegedMode::Replaced);
        }
        Err(KindError::NoPrivileges {
            privileged: native.tail(),
            replacement_flags: PRIVILEGED_REPLACEMENT.join(" "),
            replacement: replaced.tail(),
        })
    }

    /// Whether kind must run behind the [docker shim](crate::shim), i.e. whether
    /// `--privileged` is refused here but its replacement works.
    pub async fn needs_privileged_shim(&self, probe_image: &str) -> Result<bool> {
        Ok(self.privileged_mode(probe_image).await? == PrivilegedMode::Replaced)
    }
}

fn lines(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn parse_network(action: &str, json: &str) -> Result<NetworkInfo> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Raw {
        name: String,
        id: String,
        #[serde(rename = "IPAM")]
        ipam: Ipam,
        #[serde(default)]
        options: Option<BTreeMap<String, String>>,
        #[serde(default)]
        labels: Option<BTreeMap<String, String>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Ipam {
        #[serde(default)]
        config: Option<Vec<IpamConfig>>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct IpamConfig {
        #[serde(default)]
        subnet: String,
        #[serde(default)]
        gateway: String,
    }
    let raw: Raw =
        serde_json::from_str(json).map_err(|e| KindError::invalid(action, e.to_string()))?;
    let (subnet, gateway) = raw
        .ipam
        .config
        .unwrap_or_default()
        .into_iter()
        .find_map(|c| {
            let subnet: Ipv4Cidr = c.subnet.parse().ok()?;
            let gateway = c.gateway.parse().ok().unwrap_or_else(|| subnet.host(1));
            Some((subnet, gateway))
        })
        .ok_or_else(|| KindError::invalid(action, "the network has no IPv4 subnet"))?;
    let bridge = raw
        .options
        .as_ref()
        .and_then(|o| o.get("com.docker.network.bridge.name").cloned())
        .unwrap_or_else(|| format!("br-{}", &raw.id[..raw.id.len().min(12)]));
    Ok(NetworkInfo {
        name: raw.name,
        id: raw.id,
        bridge,
        subnet,
        gateway,
        labels: raw.labels.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_bridge_defaults_to_docker_naming() {
        let json = r#"{"Name":"podid-x","Id":"0123456789abcdef0123","IPAM":{"Config":[{"Subnet":"172.29.3.0/24","Gateway":"172.29.3.1"}]},"Options":{},"Labels":{"podid.run":"x"}}"#;
        let info = parse_network("t", json).unwrap();
        assert_eq!(info.bridge, "br-0123456789ab");
        assert_eq!(info.subnet.to_string(), "172.29.3.0/24");
        assert_eq!(info.gateway, Ipv4Addr::new(172, 29, 3, 1));
        assert_eq!(info.labels["podid.run"], "x");
    }

    #[test]
    fn network_bridge_name_option_wins_and_ipv6_only_is_refused() {
        let json = r#"{"Name":"n","Id":"abc","IPAM":{"Config":[{"Subnet":"fd00::/64"},{"Subnet":"10.1.0.0/16"}]},"Options":{"com.docker.network.bridge.name":"podid0"}}"#;
        let info = parse_network("t", json).unwrap();
        assert_eq!(info.bridge, "podid0");
        assert_eq!(info.gateway, Ipv4Addr::new(10, 1, 0, 1));
        let v6 = r#"{"Name":"n","Id":"abc","IPAM":{"Config":[{"Subnet":"fd00::/64"}]}}"#;
        assert!(parse_network("t", v6).is_err());
    }

    #[test]
    fn replaced_mode_never_passes_privileged() {
        assert_eq!(PrivilegedMode::Native.run_flags(), ["--privileged"]);
        let flags = PrivilegedMode::Replaced.run_flags();
        assert!(!flags.iter().any(|f| f == "--privileged"));
        assert!(flags.iter().any(|f| f == "--cap-drop=SYS_RESOURCE"));
    }
}
