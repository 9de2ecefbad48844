//! Images built from local files only: a base (nothing, or a local image such as an imported
//! Debian root) plus files, an entrypoint and environment. Nothing is pulled, so this works
//! where no registry is reachable, and a tag carrying a hash of the inputs makes rebuilding
//! an unchanged image a no-op.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cache::Fingerprint;
use crate::docker::Docker;
use crate::error::{KindError, Result};
use crate::process::Cmd;
use crate::progress::{Outcome, Phase, Progress};

/// What an image starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageBase {
    /// An empty file system (`FROM scratch`).
    Scratch,
    /// A local image, by tag; give it a content-addressed tag so the new image's key follows it.
    Image(String),
}

/// One file copied into an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// The file on this machine (symlinks are followed).
    pub host: PathBuf,
    /// Its absolute path in the image.
    pub path: String,
    /// Its permission bits in the image (owner is root).
    pub mode: u32,
}

/// Everything an image is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The tag to build (see [`ImageSpec::with_content_tag`]).
    pub tag: String,
    /// What it starts from.
    pub base: ImageBase,
    /// Files to add.
    pub files: Vec<ImageFile>,
    /// `ENTRYPOINT`, exec form; empty keeps the base's.
    pub entrypoint: Vec<String>,
    /// `CMD`, exec form; empty keeps the base's.
    pub cmd: Vec<String>,
    /// `ENV` entries.
    pub env: Vec<(String, String)>,
}

/// An image that exists locally after an `ensure_*` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Its tag.
    pub tag: String,
    /// Whether this call built it (false: it already existed).
    pub built: bool,
    /// How long this call took.
    pub took: Duration,
}

impl ImageSpec {
    /// An image `tag` on `base` with nothing added yet.
    pub fn new(tag: impl Into<String>, base: ImageBase) -> Self {
        Self {
            tag: tag.into(),
            base,
            files: Vec::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Adds a file (replacing any earlier file at the same image path).
    pub fn file(mut self, host: impl Into<PathBuf>, path: impl Into<String>, mode: u32) -> Self {
        self.push_file(host.into(), path.into(), mode);
        self
    }

    fn push_file(&mut self, host: PathBuf, path: String, mode: u32) {
        self.files.retain(|f| f.path != path);
        self.files.push(ImageFile { host, path, mode });
    }

    /// Sets the entrypoint.
    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.entrypoint = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the default command.
    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds a dynamically linked binary together with every shared library `ldd` says it
    /// loads (and the dynamic loader), each at the path the binary will look for it, so the
    /// binary runs on an empty base. A statically linked binary is added alone.
    pub async fn add_dynamic_binary(&mut self, host: &Path, path: &str, mode: u32) -> Result<()> {
        let action = format!("listing the shared libraries of {}", host.display());
        let captured = Cmd::new("ldd", action.clone()).arg(host).capture().await?;
        let text = format!("{}\n{}", captured.stdout, captured.stderr);
        let libraries =
            if text.contains("not a dynamic executable") || text.contains("statically linked") {
                Vec::new()
            } else if !captured.success {
                return Err(KindError::Command {
                    action,
                    command: format!("ldd {}", host.display()),
                    status: captured.status.clone(),
                    output: captured.tail(),
                });
            } else {
                parse_ldd(&captured.stdout).map_err(|reason| KindError::invalid(action, reason))?
            };
        self.push_file(host.to_owned(), path.to_owned(), mode);
        for lib in libraries {
            let image_path = lib.to_string_lossy().into_owned();
            self.push_file(lib, image_path, 0o755);
        }
        Ok(())
    }

    /// A hash of everything the image is made of: base tag, file contents, paths and modes,
    /// entrypoint, command and environment.
    pub fn fingerprint(&self) -> Result<String> {
        let mut fp = Fingerprint::new("image");
        match &self.base {
            ImageBase::Scratch => fp.add_str("base", "scratch"),
            ImageBase::Image(tag) => fp.add_str("base", tag),
        };
        let mut files = self.files.clone();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for f in &files {
            fp.add_str("path", &f.path)
                .add_str("mode", &format!("{:o}", f.mode))
                .add_file("content", &f.host)?;
        }
        fp.add_list("entrypoint", &self.entrypoint)
            .add_list("cmd", &self.cmd);
        for (k, v) in &self.env {
            fp.add_str("env", &format!("{k}={v}"));
        }
        Ok(fp.hex(16))
    }

    /// Sets the tag to `repository:<fingerprint>`, so the tag changes exactly when an input does.
    pub fn with_content_tag(mut self, repository: &str) -> Result<Self> {
        self.tag = format!("{repository}:{}", self.fingerprint()?);
        Ok(self)
    }

    /// The Dockerfile for this spec, with files taken from `files/<index>` in the context.
    pub(crate) fn dockerfile(&self) -> Result<String> {
        let mut out = String::new();
        match &self.base {
            ImageBase::Scratch => out.push_str("FROM scratch\n"),
            ImageBase::Image(tag) => out.push_str(&format!("FROM {tag}\n")),
        }
        for (i, f) in self.files.iter().enumerate() {
            if !f.path.starts_with('/') {
                return Err(KindError::invalid(
                    format!("building image {}", self.tag),
                    format!("image path `{}` is not absolute", f.path),
                ));
            }
            out.push_str(&format!("COPY [\"files/{i}\", {}]\n", json(&f.path)));
        }
        for (k, v) in &self.env {
            let valid = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(KindError::invalid(
                    format!("building image {}", self.tag),
                    format!("`{k}` is not a valid environment variable name"),
                ));
            }
            out.push_str(&format!("ENV {k}={}\n", json(v)));
        }
        if !self.entrypoint.is_empty() {
            out.push_str(&format!("ENTRYPOINT {}\n", json(&self.entrypoint)));
        }
        if !self.cmd.is_empty() {
            out.push_str(&format!("CMD {}\n", json(&self.cmd)));
        }
        Ok(out)
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("strings always serialise")
}

/// Library paths from `ldd` output; a library that is "not found" is an error.
pub(crate) fn parse_ldd(output: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("library {} is not found", name.trim()));
                }
                rest.split_whitespace().next().unwrap_or("")
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        // The vDSO (no path) lives in the kernel.
        if target.starts_with('/') {
            libs.push(PathBuf::from(target));
        }
    }
    Ok(libs)
}

/// Builds `spec` unless an image with its tag already exists.
pub async fn ensure_image(
    docker: &Docker,
    spec: &ImageSpec,
    progress: &dyn Progress,
) -> Result<BuiltImage> {
    let started = Instant::now();
    let phase = Phase::Image {
        tag: spec.tag.clone(),
    };
    if docker.image_exists(&spec.tag).await? {
        progress.finished(&phase, Outcome::Cached, started.elapsed());
        return Ok(BuiltImage {
            tag: spec.tag.clone(),
            built: false,
            took: started.elapsed(),
        });
    }
    progress.started(&phase);
    build_image(docker, spec).await?;
    let took = started.elapsed();
    progress.finished(&phase, Outcome::Done, took);
    Ok(BuiltImage {
        tag: spec.tag.clone(),
        built: true,
        took,
    })
}

/// Builds `spec` now (replacing whatever has its tag).
pub async fn build_image(docker: &Docker, spec: &ImageSpec) -> Result<()> {
    let dockerfile = spec.dockerfile()?;
    let context = tempfile::Builder::new()
        .prefix("podid-image-")
        .tempdir()
        .map_err(KindError::io(
            "creating a build context in",
            std::env::temp_dir(),
        ))?;
    let ctx = context.path().to_owned();
    let files = spec.files.clone();
    tokio::task::spawn_blocking(move || stage_files(&ctx, &files, &dockerfile))
        .await
        .map_err(|e| KindError::invalid("staging image files", e.to_string()))??;
    docker.build(context.path(), &spec.tag).await
}

fn stage_files(ctx: &Path, files: &[ImageFile], dockerfile: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = ctx.join("files");
    std::fs::create_dir_all(&dir).map_err(KindError::io("creating", &dir))?;
    for (i, f) in files.iter().enumerate() {
        if !f.host.is_file() {
            return Err(KindError::MissingInput {
                what: format!("the file for {}", f.path),
                path: f.host.clone(),
            });
        }
        let staged = dir.join(i.to_string());
        std::fs::copy(&f.host, &staged)
            .map_err(KindError::io("copying into the build context", &f.host))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(f.mode))
            .map_err(KindError::io("setting the mode of", &staged))?;
    }
    let path = ctx.join("Dockerfile");
    std::fs::write(&path, dockerfile).map_err(KindError::io("writing", &path))?;
    let ignore = ctx.join(".dockerignore");
    std::fs::write(&ignore, "Dockerfile\n").map_err(KindError::io("writing", &ignore))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_yields_library_paths() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
    }

    #[test]
    fn dockerfile_copies_files_and_sets_exec_forms() {
        let spec = ImageSpec::new("t:1", ImageBase::Image("base:1".into()))
            .file("/x/mic", "/usr/local/bin/mic", 0o755)
            .file("/x/other", "/etc/a b", 0o644)
            .env("PATH", "/usr/local/bin:/bin")
            .entrypoint(["/usr/local/bin/mic"])
            .cmd(["--flag=\"q\""]);
        let df = spec.dockerfile().unwrap();
        assert_eq!(
            df,
            "FROM base:1\n\
             COPY [\"files/0\", \"/usr/local/bin/mic\"]\n\
             COPY [\"files/1\", \"/etc/a b\"]\n\
             ENV PATH=\"/usr/local/bin:/bin\"\n\
             ENTRYPOINT [\"/usr/local/bin/mic\"]\n\
             CMD [\"--flag=\\\"q\\\"\"]\n"
        );
        let bad = ImageSpec::new("t:1", ImageBase::Scratch).env("A-B", "x");
        assert!(bad.dockerfile().is_err());
        let relative = ImageSpec::new("t:1", ImageBase::Scratch).file("/x", "rel", 0o644);
        assert!(relative.dockerfile().is_err());
    }

    #[test]
    fn fingerprint_follows_contents_modes_and_base() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::write(&bin, "v1").unwrap();
        let spec = |mode, base: ImageBase| {
            ImageSpec::new("t", base)
                .file(&bin, "/bin/x", mode)
                .entrypoint(["/bin/x"])
        };
        let k1 = spec(0o755, ImageBase::Scratch).fingerprint().unwrap();
        assert_eq!(k1, spec(0o755, ImageBase::Scratch).fingerprint().unwrap());
        assert_ne!(k1, spec(0o700, ImageBase::Scratch).fingerprint().unwrap());
        assert_ne!(
            k1,
            spec(0o755, ImageBase::Image("b:1".into()))
                .fingerprint()
                .unwrap()
        );
        std::fs::write(&bin, "v2").unwrap();
        assert_ne!(k1, spec(0o755, ImageBase::Scratch).fingerprint().unwrap());
        let tagged = spec(0o755, ImageBase::Scratch)
            .with_content_tag("podid/x")
            .unwrap();
        assert!(tagged.tag.starts_with("podid/x:"));
    }

    #[tokio::test]
    async fn dynamic_binary_brings_its_libraries() {
        let mut spec = ImageSpec::new("t", ImageBase::Scratch);
        spec.add_dynamic_binary(Path::new("/bin/sh"), "/bin/sh", 0o755)
            .await
            .unwrap();
        assert_eq!(spec.files[0].path, "/bin/sh");
        assert!(
            spec.files.iter().any(|f| f.path.contains("libc.so")),
            "{:?}",
            spec.files
        );
    }
}
