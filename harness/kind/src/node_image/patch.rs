//! The two small changes made to kind's node files at build time (the files themselves are read
//! from kind's module directory, never copied into this repository):
//!
//! * the node entrypoint makes `/sys` and the cgroup mounts writable before anything else runs,
//!   because without `--privileged` docker mounts them read-only and systemd, the kubelet and
//!   kind's own cgroup set-up need to write there (on privileged nodes they are already writable
//!   and nothing changes);
//! * containerd's CRI config sets `restrict_oom_score_adj = true`, because a negative
//!   `oom_score_adj` needs CAP_SYS_RESOURCE, which such nodes lack; without it every pod
//!   sandbox fails to start ("can't get final child's PID from pipe: EOF"). Restricting only
//!   clamps requested scores to the current one, which is harmless on ordinary hosts.

/// The shell function (and its call) placed in the entrypoint just before kind fixes mounts.
pub(crate) const WRITABLE_MOUNTS: &str = r#"# podid: a node started without --privileged gets /sys and the cgroup hierarchies read-only;
# make them writable before kind adjusts mounts and cgroups and before systemd starts.
podid_make_mounts_writable() {
  local target fstype options
  while read -r target fstype options; do
    case "$fstype" in
      sysfs) [ "$target" = /sys ] || continue ;;
      tmpfs) [ "$target" = /sys/fs/cgroup ] || continue ;;
      cgroup|cgroup2) ;;
      *) continue ;;
    esac
    case ",$options," in
      *,ro,*)
        echo "INFO: podid: remounting $target read-write" >&2
        mount -o remount,bind,rw "$target" || mount -o remount,rw "$target"
        ;;
    esac
  done < <(findmnt -rn -o TARGET,FSTYPE,OPTIONS)
}
podid_make_mounts_writable
"#;

/// Inserts [`WRITABLE_MOUNTS`] before the entrypoint's call of `fix_mount`; `Err` says what
/// was not found.
pub(crate) fn entrypoint(text: &str) -> Result<String, String> {
    if text.contains("podid_make_mounts_writable") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len() + WRITABLE_MOUNTS.len());
    let mut inserted = false;
    for line in text.split_inclusive('\n') {
        if !inserted && line.trim() == "fix_mount" {
            out.push_str(WRITABLE_MOUNTS);
            inserted = true;
        }
        out.push_str(line);
    }
    if inserted {
        Ok(out)
    } else {
        Err("no line calling `fix_mount`".to_owned())
    }
}

/// Sets `restrict_oom_score_adj = true` in containerd's config; `Err` if the setting is absent.
pub(crate) fn containerd_config(text: &str) -> Result<String, String> {
    let mut found = false;
    let out: String = text
        .split_inclusive('\n')
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("restrict_oom_score_adj") && trimmed.contains('=') {
                found = true;
                let indent = &line[..line.len() - trimmed.len()];
                let newline = if line.ends_with('\n') { "\n" } else { "" };
                format!("{indent}restrict_oom_score_adj = true{newline}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    if found {
        Ok(out)
    } else {
        Err("no `restrict_oom_score_adj` setting".to_owned())
    }
}

/// The sandbox (pause) image containerd's config names, e.g. `registry.k8s.io/pause:3.10`.
pub(crate) fn sandbox_image(config: &str) -> Option<String> {
    config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "sandbox_image").then(|| value.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRYPOINT: &str = "#!/bin/bash\nfix_mount() {\n  true\n}\n\nconfigure_proxy\nfix_mount\nfix_cgroup\nexec \"$@\"\n";

    #[test]
    fn entrypoint_gets_the_remount_before_fix_mount_once() {
        let patched = entrypoint(ENTRYPOINT).unwrap();
        let remount = patched.find("podid_make_mounts_writable\n").unwrap();
        let call = patched.find("\nfix_mount\n").unwrap();
        let definition = patched.find("fix_mount() {").unwrap();
        assert!(definition < remount && remount < call);
        assert_eq!(entrypoint(&patched).unwrap(), patched);
        assert!(entrypoint("#!/bin/bash\nexec \"$@\"\n").is_err());
    }

    #[test]
    fn remount_function_is_valid_bash() {
        let out = std::process::Command::new("bash")
            .args(["-n", "-c", WRITABLE_MOUNTS])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn containerd_config_restricts_oom_score_adj() {
        let config = "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.10\"\n  restrict_oom_score_adj = false\n";
        let patched = containerd_config(config).unwrap();
        assert!(patched.contains("\n  restrict_oom_score_adj = true\n"));
        assert!(!patched.contains("= false"));
        assert!(containerd_config("version = 2\n").is_err());
        assert_eq!(
            sandbox_image(config).as_deref(),
            Some("registry.k8s.io/pause:3.10")
        );
    }
}
