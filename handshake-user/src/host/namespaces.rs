//! The network namespaces that are alive, by cookie: what tells a pin folder
//! `netns-COOKIE` whose namespace is gone (see xdp/gone.rs).
//!
//! A namespace lives while something holds it: a task in it, an open file of it (an fd of
//! /proc/PID/ns/net or of a bind mount), a bind mount (`ip netns add` makes one under
//! /run/netns, container runtimes elsewhere, in mount namespaces of their own), or a socket
//! made in it. All but the last can be found from /proc, in every mount namespace, when this
//! process sees every process (the initial PID namespace); a namespace held only by a
//! socket, or only by a process that refuses to be read, cannot be found, which is why
//! gone.rs also asks the pinned XDP links.
//!
//! The kernel gives a namespace's cookie only through a socket made in it
//! (SO_NETNS_COOKIE): one helper thread enters each namespace found (setns), makes a socket
//! and reads it. Inode numbers would be simpler but a dead namespace's inode number is
//! reused, while a cookie never is (a 64-bit counter), and the folders are named by cookie.

use std::{
    collections::{HashMap, HashSet},
    fs::{self, File},
    io,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow, bail};

use crate::interface;

/// `PROC_PID_INIT_INO` (include/linux/proc_ns.h): the inode of the initial PID namespace,
/// the same on every boot.
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// The cookies of the network namespaces alive that a task, an open file or a bind mount
/// holds, of every process that lets itself be read. An error when this process cannot
/// see the processes (a PID namespace of its own) or may not enter a namespace it found:
/// then no answer is sure.
pub fn live_cookies() -> anyhow::Result<HashSet<u64>> {
    let pid_namespace = fs::metadata("/proc/self/ns/pid")
        .context("reading /proc/self/ns/pid failed; is /proc mounted?")?
        .ino();
    if pid_namespace != INITIAL_PID_NAMESPACE {
        bail!(
            "handshake runs in a PID namespace of its own (a container?) and cannot see every process, so cannot tell which network namespaces are alive; run it on the host"
        );
    }
    let files = open_all(&candidates()?)?;
    // setns changes only the calling thread's namespace: a thread of its own keeps the
    // caller's (and its sockets') where they are.
    std::thread::spawn(move || {
        let mut cookies = HashSet::new();
        for (inode, file) in files {
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error())
                    .with_context(|| format!("entering network namespace net:[{inode}] failed"));
            }
            cookies.insert(interface::netns_cookie()?);
        }
        Ok(cookies)
    })
    .join()
    .map_err(|_| anyhow!("the thread reading network namespace cookies panicked"))?
}

/// A path to each network namespace found, by inode: the namespace of every task, every
/// open file of a namespace, and every nsfs mount of every mount namespace.
fn candidates() -> anyhow::Result<HashMap<u64, PathBuf>> {
    let mut found = HashMap::new();
    let mut mount_namespaces = HashSet::new();
    let mut unreadable = Vec::new();
    for pid in numbered(Path::new("/proc"))? {
        match scan_process(pid, &mut found, &mut mount_namespaces) {
            Ok(()) => {}
            // It exited while it was read: what it held is found elsewhere or is gone.
            Err(error) if gone(&error) => {}
            // Even root may be refused a process (an LSM, a supervisor that makes itself
            // unreadable): what only it holds is unseen, as a socket's namespace is, and
            // gone.rs's second fact (the links) covers both.
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => unreadable.push(pid),
            Err(error) => {
                return Err(error).context(format!("reading the namespaces of process {pid}"));
            }
        }
    }
    if !unreadable.is_empty() {
        log::debug!("processes whose namespaces cannot be read: {unreadable:?}");
    }
    Ok(found)
}

/// Adds what process `pid` holds: its tasks' namespaces, its open namespace files, and the
/// nsfs mounts of its mount namespace (once per mount namespace, through its view of it).
fn scan_process(
    pid: u32,
    found: &mut HashMap<u64, PathBuf>,
    mount_namespaces: &mut HashSet<u64>,
) -> io::Result<()> {
    let process = Path::new("/proc").join(pid.to_string());
    // Threads may be in other namespaces than their process (setns per thread).
    for tid in numbered(&process.join("task"))? {
        let path = process.join(format!("task/{tid}/ns/net"));
        match fs::metadata(&path) {
            Ok(metadata) => {
                found.entry(metadata.ino()).or_insert(path);
            }
            // An exited thread, or a zombie's (which holds no namespace).
            Err(error) if gone(&error) => {}
            Err(error) => return Err(error),
        }
    }
    for fd in numbered(&process.join("fd"))? {
        let path = process.join(format!("fd/{fd}"));
        let target = match fs::read_link(&path) {
            Ok(target) => target,
            Err(error) if gone(&error) => continue,
            Err(error) => return Err(error),
        };
        if let Some(inode) = net_inode(&target.to_string_lossy()) {
            found.entry(inode).or_insert(path);
        }
    }
    let mounts = fs::metadata(process.join("ns/mnt"))?.ino();
    if mount_namespaces.contains(&mounts) {
        return Ok(());
    }
    let info = fs::read_to_string(process.join("mountinfo"))?;
    mount_namespaces.insert(mounts);
    for (inode, mount_point) in nsfs_mounts(&info) {
        // mountinfo gives mount points as the process sees them, from its root.
        let path = process
            .join("root")
            .join(mount_point.trim_start_matches('/'));
        found.entry(inode).or_insert(path);
    }
    Ok(())
}

/// Opens each namespace found; one that went away meanwhile (its process exited, its mount
/// was removed) is skipped: it was the holder, or another holder is found.
fn open_all(candidates: &HashMap<u64, PathBuf>) -> anyhow::Result<Vec<(u64, File)>> {
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for path in candidates.values() {
        let file = match File::open(path) {
            Ok(file) => file,
            // Unseen, as in `candidates`.
            Err(error) if gone(&error) || error.kind() == io::ErrorKind::PermissionDenied => {
                continue;
            }
            Err(error) => return Err(error).context(format!("opening {}", path.display())),
        };
        // The inode of what was opened, not of what was listed: a task may have moved.
        let inode = file.metadata()?.ino();
        if seen.insert(inode) {
            files.push((inode, file));
        }
    }
    Ok(files)
}

/// The numeric entries of a /proc folder (processes, tasks, fds).
fn numbered(dir: &Path) -> io::Result<Vec<u32>> {
    Ok(fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect())
}

/// Errors of a process or mount that went away while it was read: ENOENT (also a zombie's
/// ns links), and ESRCH (a task exiting).
fn gone(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ESRCH)
}

/// `net:[4026531840]`, as the kernel names a network namespace's nsfs file.
fn net_inode(name: &str) -> Option<u64> {
    name.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The network namespaces bind-mounted in a mountinfo (proc(5)): the fields are `ID PARENT
/// MAJ:MIN ROOT MOUNT_POINT ... - FSTYPE SOURCE ...`, and an nsfs mount's root is the
/// namespace's name. Returns the inode and the mount point, unescaped.
fn nsfs_mounts(info: &str) -> Vec<(u64, String)> {
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split(' ').next()? != "nsfs" {
                return None;
            }
            let mut fields = left.split(' ');
            let root = fields.nth(3)?;
            let mount_point = fields.next()?;
            Some((net_inode(root)?, unescape(mount_point)))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{net_inode, nsfs_mounts};

    #[test]
    fn network_namespace_mounts_are_read_from_mountinfo() {
        let info = "\
36 25 0:4 net:[4026532281] /run/netns/hs-a rw shared:5 - nsfs nsfs rw
37 25 0:4 mnt:[4026532282] /run/mnt-a rw - nsfs nsfs rw
38 25 0:4 net:[4026532290] /run/with\\040space rw - nsfs nsfs rw
24 1 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
";
        assert_eq!(
            nsfs_mounts(info),
            [
                (4026532281, "/run/netns/hs-a".to_owned()),
                (4026532290, "/run/with space".to_owned())
            ]
        );
        assert_eq!(net_inode("net:[4026531840]"), Some(4026531840));
        assert_eq!(net_inode("socket:[123]"), None);
    }
}
