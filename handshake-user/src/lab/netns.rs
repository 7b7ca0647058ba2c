//! Running code inside a network namespace: a thread that `setns`es into it. Sockets it
//! opens, interfaces it names and /proc/sys/net it reads all belong to that namespace.

use std::{fs::File, io, os::fd::AsRawFd, thread};

use anyhow::Context as _;

/// Runs `work` on a new thread inside namespace `ns` (as created by `ip netns add`).
pub fn run_in<T: Send + 'static>(
    ns: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    spawn_in(ns, work)?
        .join()
        .map_err(|_| anyhow::anyhow!("a thread inside namespace {ns} panicked"))
}

/// Starts `work` on a thread inside namespace `ns` and returns its handle.
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<thread::JoinHandle<T>> {
    let path = format!("/run/netns/{ns}");
    let file =
        File::open(&path).with_context(|| format!("network namespace {ns} not found at {path}"))?;
    let handle = thread::spawn(move || {
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!("setns into {path} failed: {}", io::Error::last_os_error());
        }
        work()
    });
    Ok(handle)
}
