//! Where an attachment lives after the loader exits: under a BPF filesystem (default
//! /sys/fs/bpf/handshake), one folder per network namespace (`netns-COOKIE`) and in it one
//! per interface, holding the pinned XDP link, the program and the maps. The link pin
//! keeps the program attached; removing the folder's pins is what detaches it.
//!
//! Folders are per namespace because interface names are: `eth0` of one namespace is not
//! `eth0` of another, and neither may see or change the other's protection.

use std::{
    ffi::CString,
    fs::{self, File},
    io,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

use crate::interface;

pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/handshake";
/// `BPF_FS_MAGIC` in include/uapi/linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPF_MOUNT: &str = "/sys/fs/bpf";

pub const LINK: &str = "link";
pub const PROGRAM: &str = "program";

/// The pin folder of the calling thread's network namespace under a root.
#[derive(Clone, Debug)]
pub struct PinRoot {
    root: PathBuf,
    netns: PathBuf,
    /// The namespace's cookie, which names its folder.
    cookie: u64,
    /// How hints spell this program: with `--pin-dir` when the root is not the default.
    command: String,
}

impl PinRoot {
    /// The folder for this namespace under `root`; refuses a private /sys (`ip netns exec`),
    /// where pins would not be shared with any other process.
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        refuse_private_sys(&root)?;
        let cookie = interface::netns_cookie()?;
        let netns = root.join(format!("netns-{cookie}"));
        let command = if root == Path::new(DEFAULT_ROOT) {
            "handshake".to_owned()
        } else {
            format!("handshake --pin-dir {}", root.display())
        };
        Ok(Self {
            root,
            netns,
            cookie,
            command,
        })
    }

    /// The folder of the namespace with `cookie` under the same root (another namespace's:
    /// only for its pins, as `detach --gone` removes them).
    pub fn of_cookie(&self, cookie: u64) -> Self {
        Self {
            root: self.root.clone(),
            netns: self.root.join(format!("netns-{cookie}")),
            cookie,
            command: self.command.clone(),
        }
    }

    /// `handshake SUBCOMMAND` as a hint should spell it for this root.
    pub fn command(&self, subcommand: &str) -> String {
        format!("`{}`", self.command_line(subcommand))
    }

    /// The same, unquoted (for `--json`).
    pub fn command_line(&self, subcommand: &str) -> String {
        format!("{} {subcommand}", self.command)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cookie of this folder's namespace.
    pub fn cookie(&self) -> u64 {
        self.cookie
    }

    /// This namespace's folder.
    pub fn path(&self) -> &Path {
        &self.netns
    }

    pub fn iface_dir(&self, iface: &str) -> PathBuf {
        self.netns.join(folder_name(iface))
    }

    /// Mounts the BPF filesystem at /sys/fs/bpf when the root lies there and nothing is
    /// mounted yet (as systemd normally does at boot), then creates this namespace's folder.
    pub fn prepare(&self) -> anyhow::Result<()> {
        if !on_bpffs(&self.root)? {
            if !self.root.starts_with(BPF_MOUNT) || on_bpffs(Path::new(BPF_MOUNT))? {
                bail!(
                    "{} is not on a BPF filesystem; give a --pin-dir under {BPF_MOUNT}, or mount one with `mount -t bpf bpf DIR`",
                    self.root.display()
                );
            }
            mount_bpffs()?;
        }
        fs::create_dir_all(&self.netns)
            .with_context(|| format!("creating {} failed", self.netns.display()))
    }

    /// Creates this namespace's folder if needed and locks it (see `Lock`).
    pub fn prepare_locked(&self) -> anyhow::Result<Lock> {
        loop {
            self.prepare()?;
            if let Some(lock) = self.lock()? {
                return Ok(lock);
            }
        }
    }

    /// Locks this namespace's folder; `None` when there is no folder (nothing attached).
    pub fn lock(&self) -> anyhow::Result<Option<Lock>> {
        loop {
            let dir = match File::open(&self.netns) {
                Ok(dir) => dir,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(self.access_error(error)),
            };
            while unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error)
                        .with_context(|| format!("locking {} failed", self.netns.display()));
                }
            }
            // A detach may have removed the folder while this call waited for the lock: a
            // lock on a removed folder protects nothing, so lock the current one.
            let held = dir.metadata()?;
            match fs::metadata(&self.netns) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Some(Lock(dir)));
                }
                _ => continue,
            }
        }
    }

    /// Removes this namespace's folder and the root when they are empty (after the last
    /// detach); a folder still in use stays.
    pub fn remove_if_empty(&self) {
        let _ = fs::remove_dir(&self.netns);
        let _ = fs::remove_dir(&self.root);
    }

    /// The interfaces with a folder here, attached or stale, sorted by name.
    pub fn interfaces(&self) -> anyhow::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.netns) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(self.access_error(error)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .map(|entry| iface_name(&entry.file_name().to_string_lossy()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The cookies of every namespace with a folder under the root (`netns-COOKIE`), this
    /// one's included, sorted.
    pub fn namespace_cookies(&self) -> Vec<u64> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut cookies: Vec<u64> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter_map(|entry| {
                let name = entry.file_name();
                let cookie: u64 = name.to_str()?.strip_prefix("netns-")?.parse().ok()?;
                // Exactly as `new` names it (not `netns-+7` or `netns-07`).
                (name.to_str()? == format!("netns-{cookie}")).then_some(cookie)
            })
            .collect();
        cookies.sort_unstable();
        cookies
    }

    /// Folders under the root that are no namespace's: pins of a handshake from before
    /// folders per namespace (`ROOT/IFACE`), which still hold their program attached.
    pub fn foreign_folders(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut folders: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with("netns-"))
            .filter(|entry| entry.path().join(PROGRAM).exists())
            .map(|entry| entry.path())
            .collect();
        folders.sort();
        folders
    }

    /// Whether `iface` has a folder here; a folder that cannot be read is an error, never
    /// "not attached".
    pub fn has(&self, iface: &str) -> anyhow::Result<bool> {
        match fs::metadata(self.iface_dir(iface)) {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(self.access_error(error)),
        }
    }

    fn access_error(&self, error: io::Error) -> anyhow::Error {
        if error.kind() == io::ErrorKind::PermissionDenied {
            return anyhow::anyhow!(
                "permission denied reading {}; run handshake as root, e.g. `sudo handshake ...`",
                self.netns.display()
            );
        }
        anyhow::Error::new(error).context(format!("reading {} failed", self.netns.display()))
    }
}

/// An exclusive `flock` on a namespace's pin folder, held while a command changes pins or
/// port slots there: two `ports add` at once would otherwise pick the same free slot.
/// Released when dropped (or when the process exits, however it exits).
pub struct Lock(#[allow(dead_code)] File);

/// `ip netns exec NS` runs the command with a /sys of its own, mounted with the source name
/// NS (iproute2's `netns_switch`); a BPF filesystem mounted there is private to the command
/// and dies with it, and the host's pins are not visible. `nsenter --net` keeps /sys.
fn refuse_private_sys(root: &Path) -> anyhow::Result<()> {
    if !root.starts_with("/sys") {
        return Ok(());
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // The last mount on /sys is the one visible.
    let source = mounts
        .lines()
        .rev()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut fields = right.split(' ');
            let (kind, source) = (fields.next()?, fields.next()?);
            (mount_point == "/sys" && kind == "sysfs").then_some(source)
        })
        .next();
    match source {
        Some(name) if name != "sysfs" && Path::new("/run/netns").join(name).exists() => bail!(
            "this process runs under `ip netns exec {name}`, which gives it a private /sys: pins made here vanish when it exits and the host's pins are not visible; nothing changed. Run `nsenter --net=/run/netns/{name} handshake ...` instead"
        ),
        _ => Ok(()),
    }
}

/// Whether `path` (or, if it does not exist yet, its nearest existing parent) is on bpffs.
fn on_bpffs(path: &Path) -> anyhow::Result<bool> {
    let existing = path
        .ancestors()
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("/"));
    let name = CString::new(existing.as_os_str().as_encoded_bytes())?;
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(name.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("statfs {} failed", existing.display()));
    }
    Ok(stat.f_type == BPF_FS_MAGIC)
}

fn mount_bpffs() -> anyhow::Result<()> {
    fs::create_dir_all(BPF_MOUNT)?;
    let (source, target, kind) = (
        CString::new("bpf")?,
        CString::new(BPF_MOUNT)?,
        CString::new("bpf")?,
    );
    let mode = CString::new("mode=0700")?;
    if unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            mode.as_ptr().cast(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error())
            .context("mounting the BPF filesystem at /sys/fs/bpf failed; mount it with `mount -t bpf bpf /sys/fs/bpf`");
    }
    log::info!("mounted the BPF filesystem at {BPF_MOUNT}");
    Ok(())
}

/// The folder of interface `iface`: the BPF filesystem refuses names with a dot (`bpf_lookup`
/// reserves them), which VLAN devices have (`eth0.100`); an interface name never holds a
/// ':' (`check_name`), so each dot becomes one.
fn folder_name(iface: &str) -> String {
    iface.replace('.', ":")
}

/// The interface a folder is for (`folder_name` undone).
fn iface_name(folder: &str) -> String {
    folder.replace(':', ".")
}

#[cfg(test)]
mod folder_tests {
    use super::{folder_name, iface_name};

    #[test]
    fn vlan_interfaces_get_folders_without_dots() {
        assert_eq!(folder_name("eth0.100"), "eth0:100");
        assert_eq!(iface_name("eth0:100"), "eth0.100");
        assert_eq!(folder_name("hs-server"), "hs-server");
    }
}
