//! Loading XDP, and reading or changing pinned maps, needs CAP_BPF (or CAP_SYS_ADMIN) and
//! CAP_NET_ADMIN; say "permission denied" before the kernel answers with a bare EPERM, or
//! a folder that cannot be read passes for "not attached".

use anyhow::bail;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Refuses `what` ("loading and attaching XDP") without the capabilities it needs.
pub fn require(what: &str) -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    if !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) || !has(CAP_NET_ADMIN) {
        bail!(
            "permission denied: {what} needs CAP_BPF and CAP_NET_ADMIN (effective capabilities: {effective:#x}); run handshake as root, e.g. `sudo handshake ...`"
        );
    }
    Ok(())
}
