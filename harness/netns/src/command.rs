//! Child processes inside a namespace that die with the harness.

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsFd;

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::Signal;

use crate::NetNamespace;

impl NetNamespace {
    /// A command that runs `program` inside this namespace (entered with `setns` before exec).
    ///
    /// The child gets `PR_SET_PDEATHSIG=SIGKILL`, so it dies with the thread that spawned it; spawn
    /// from a long-lived thread (a runtime worker or the main thread). `/etc/hosts` is the host's:
    /// use [`NetNamespace::exec_command`] when the namespace's hosts file must apply.
    pub fn command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        let fd = self.fd_arc();
        // SAFETY: the closure only makes async-signal-safe system calls (setns, prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                set_parent_death_signal()
            });
        }
        cmd
    }

    /// A command that runs `program` through `ip netns exec`, so `/etc/netns/NAME/hosts` applies.
    pub fn exec_command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        exec_command(self.name(), program)
    }
}

/// `ip netns exec NAME program`, dying with the harness: for programs that must resolve the
/// namespace's own host names.
pub fn exec_command(namespace: &str, program: impl AsRef<OsStr>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.arg("netns").arg("exec").arg(namespace).arg(program);
    child_dies_with_parent(&mut cmd);
    cmd
}

/// Makes a command's child receive SIGKILL when the spawning thread exits, so a crashed harness
/// leaves no servers behind.
pub fn child_dies_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl and getppid are async-signal-safe.
    unsafe {
        cmd.pre_exec(set_parent_death_signal);
    }
}

/// Sets `PR_SET_PDEATHSIG=SIGKILL`, and fails if the parent is already gone (re-parented to init).
fn set_parent_death_signal() -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
    if nix::unistd::getppid().as_raw() == 1 {
        return Err(io::Error::other("parent exited before the child started"));
    }
    Ok(())
}
