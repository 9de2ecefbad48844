//! A named network namespace (`/run/netns/NAME`), and running code on a thread inside it.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::NetnsError;
use crate::name::validate_namespace_name;

/// Where named namespaces are bind-mounted, as `ip netns` expects.
pub const NETNS_ROOT: &str = "/run/netns";
/// Where per-namespace files live that `ip netns exec` bind-mounts over `/etc`.
pub const HOSTS_ROOT: &str = "/etc/netns";

/// A named network namespace, held open by a file descriptor so commands and threads can enter it.
///
/// Cloning is cheap and shares the descriptor. The namespace outlives this value until
/// [`NetNamespace::delete`] (or [`NetNamespace::delete_by_name`]) removes its name.
#[derive(Clone)]
pub struct NetNamespace {
    name: String,
    fd: Arc<OwnedFd>,
}

impl fmt::Debug for NetNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetNamespace")
            .field("name", &self.name)
            .finish()
    }
}

impl NetNamespace {
    /// Creates a new empty namespace named `name`, like `ip netns add NAME`; fails if it exists.
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        validate_namespace_name(name)?;
        prepare_netns_root().map_err(|e| NetnsError::io("preparing /run/netns", name, e))?;
        let path = Self::path_of(name);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(&path)
            .map_err(|e| NetnsError::io(format!("creating {}", path.display()), name, e))?;
        let mount_target = path.clone();
        let mounted = run_on_thread(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &mount_target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            Ok(())
        });
        if let Err(e) = mounted {
            let _ = fs::remove_file(&path);
            return Err(NetnsError::io(
                "bind-mounting a new network namespace",
                name,
                e,
            ));
        }
        Self::open(name)
    }

    /// Opens an existing named namespace.
    pub fn open(name: &str) -> Result<Self, NetnsError> {
        validate_namespace_name(name)?;
        let path = Self::path_of(name);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| NetnsError::io(format!("opening {}", path.display()), name, e))?;
        Ok(Self {
            name: name.to_string(),
            fd: Arc::new(OwnedFd::from(file)),
        })
    }

    /// Whether a namespace named `name` exists.
    pub fn exists(name: &str) -> bool {
        Self::path_of(name).exists()
    }

    /// The namespace's name, as `ip netns` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mount path of the namespace.
    pub fn path(&self) -> PathBuf {
        Self::path_of(&self.name)
    }

    /// The bind-mount path for a namespace name.
    pub fn path_of(name: &str) -> PathBuf {
        Path::new(NETNS_ROOT).join(name)
    }

    /// The directory whose files `ip netns exec` bind-mounts over `/etc` (e.g. `hosts`).
    pub fn etc_dir(&self) -> PathBuf {
        Path::new(HOSTS_ROOT).join(&self.name)
    }

    /// The open descriptor of the namespace, for `setns` and netlink `IFLA_NET_NS_FD`.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Removes the namespace's name and its `/etc/netns` directory; idempotent.
    ///
    /// The kernel frees the namespace (and its interfaces and iptables) once no process, socket or
    /// descriptor refers to it any more.
    pub fn delete(self) -> Result<(), NetnsError> {
        Self::delete_by_name(&self.name)
    }

    /// Removes a namespace by name (see [`NetNamespace::delete`]); a missing one is not an error.
    pub fn delete_by_name(name: &str) -> Result<(), NetnsError> {
        validate_namespace_name(name)?;
        let path = Self::path_of(name);
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => {
                return Err(NetnsError::io(
                    format!("unmounting {}", path.display()),
                    name,
                    e.into(),
                ));
            }
        }
        remove_if_present(&path, |p| fs::remove_file(p))
            .map_err(|e| NetnsError::io(format!("removing {}", path.display()), name, e))?;
        let etc = Path::new(HOSTS_ROOT).join(name);
        remove_if_present(&etc, |p| fs::remove_dir_all(p))
            .map_err(|e| NetnsError::io(format!("removing {}", etc.display()), name, e))?;
        Ok(())
    }

    /// Runs `work` on a short-lived thread that has entered this namespace, and returns its result.
    ///
    /// Sockets created by `work` stay in this namespace; the calling thread never changes namespace.
    pub fn run_inside<T, F>(&self, work: F) -> io::Result<T>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let fd = self.fd.clone();
        run_on_thread(move || {
            setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)?;
            Ok(work())
        })
    }
}

/// Runs `work` on a fresh scoped thread, so namespace changes never leak into the caller's thread.
fn run_on_thread<T: Send>(work: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Makes `/run/netns` exist and be a shared mount point, as `ip netns add` does.
fn prepare_netns_root() -> io::Result<()> {
    fs::create_dir_all(NETNS_ROOT)?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, NETNS_ROOT, None::<&str>, shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(NETNS_ROOT),
                NETNS_ROOT,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            mount(None::<&str>, NETNS_ROOT, None::<&str>, shared, None::<&str>)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes a path with `remove`, treating "not found" as success.
fn remove_if_present(path: &Path, remove: fn(&Path) -> io::Result<()>) -> io::Result<()> {
    match remove(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

impl NetNamespace {
    /// A shared handle on the descriptor, for closures that outlive `self` (e.g. `pre_exec`).
    pub(crate) fn fd_arc(&self) -> Arc<OwnedFd> {
        self.fd.clone()
    }
}
