//! Where an attachment lives after the loader exits: one folder per interface under a BPF
//! filesystem (default /sys/fs/bpf/handshake/IFACE) holding the pinned XDP link, the
//! program and the maps. The link pin keeps the program attached; removing the folder's
//! pins is what detaches it.

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/handshake";
/// `BPF_FS_MAGIC` in include/uapi/linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPF_MOUNT: &str = "/sys/fs/bpf";

pub const LINK: &str = "link";
pub const PROGRAM: &str = "program";

#[derive(Clone, Debug)]
pub struct PinRoot(PathBuf);

impl PinRoot {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn iface_dir(&self, iface: &str) -> PathBuf {
        self.0.join(iface)
    }

    /// Mounts the BPF filesystem at /sys/fs/bpf when the root lies there and nothing is
    /// mounted yet (as systemd normally does at boot), then creates the root.
    pub fn prepare(&self) -> anyhow::Result<()> {
        if !on_bpffs(&self.0)? {
            if !self.0.starts_with(BPF_MOUNT) || on_bpffs(Path::new(BPF_MOUNT))? {
                bail!(
                    "{} is not on a BPF filesystem; give a --pin-dir under {BPF_MOUNT}, or mount one with `mount -t bpf bpf DIR`",
                    self.0.display()
                );
            }
            mount_bpffs()?;
        }
        fs::create_dir_all(&self.0).with_context(|| format!("creating {} failed", self.0.display()))
    }

    /// The interfaces with a folder here, attached or stale, sorted by name.
    pub fn interfaces(&self) -> anyhow::Result<Vec<String>> {
        let entries = match fs::read_dir(&self.0) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {} failed", self.0.display()));
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
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
