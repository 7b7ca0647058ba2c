//! What the benchmark reads and sets on the machine: Ctrl-C, CPU pinning, per-core CPU
//! time from /proc/stat, the kernel's TCP counters, and BPF run-time statistics.

use std::{
    collections::BTreeMap,
    fs,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, bail};
use handshake::lab::Lab;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM only raise a flag: the run stops at the next check and unwinds
/// through the destructors that delete the lab's namespaces and stop nginx.
pub fn catch_interrupts() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

pub fn check_interrupted() -> anyhow::Result<()> {
    if interrupted() {
        bail!("interrupted; the lab is being removed");
    }
    Ok(())
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Pins a thread (0: the calling one) or a kernel thread to one CPU.
pub fn pin(pid: libc::pid_t, cpu: usize) -> anyhow::Result<()> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    if unsafe { libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), &set) } != 0 {
        bail!(
            "pinning {pid} to CPU {cpu} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Runs each veth's NAPI poll in its own kernel thread ("napi/IFACE-ID") so that it can
/// be pinned: the server's receive path (XDP, TCP, SYN-ACKs) then runs on the server's
/// core, not on the core of whoever sent the frame.
pub fn threaded_napi(lab: &Lab, ns: &str, iface: &str) -> anyhow::Result<()> {
    let path = format!("/sys/class/net/{iface}/threaded");
    lab.exec(ns, &["sh", "-c", &format!("echo 1 > {path}")])
}

/// Pins every NAPI kernel thread of `iface` (by name; only the lab's veths have threaded
/// NAPI) to `cpu`. Called again after each XDP attach, which re-creates the NAPI.
pub fn pin_napi_threads(iface: &str, cpu: usize) -> anyhow::Result<usize> {
    // Thread names are cut at 15 bytes: "napi/hs-server-" is all that remains.
    let prefix: String = format!("napi/{iface}-").chars().take(15).collect();
    let mut pinned = 0;
    for entry in fs::read_dir("/proc")?.filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(&prefix) {
            pin(pid, cpu)?;
            pinned += 1;
        }
    }
    Ok(pinned)
}

/// Busy time of one core in seconds: system + irq + softirq (/proc/stat), where the
/// kernel's network receive and transmit work is accounted.
pub fn core_busy_seconds(cpu: usize) -> anyhow::Result<f64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let label = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|line| line.starts_with(&label))
        .with_context(|| format!("/proc/stat has no {label}"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(2).copied().unwrap_or(0)
        + fields.get(5).copied().unwrap_or(0)
        + fields.get(6).copied().unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok(ticks as f64 / hz)
}

/// The kernel's SNMP counters in namespace `ns` (`nstat -az --json`).
pub fn nstat(lab: &Lab, ns: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = lab.output(ns, &["nstat", "-az", "--json"])?;
    let value: serde_json::Value = serde_json::from_str(&text).context("nstat printed no JSON")?;
    let counters = value
        .get("kernel")
        .and_then(|kernel| kernel.as_object())
        .context("nstat JSON has no \"kernel\"")?;
    Ok(counters
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.as_u64()?)))
        .collect())
}

/// kernel.bpf_stats_enabled, global: on while the benchmark runs, then put back.
pub struct BpfStats {
    before: String,
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub fn enable() -> anyhow::Result<Self> {
        let before = fs::read_to_string(BPF_STATS).context("reading kernel.bpf_stats_enabled")?;
        fs::write(BPF_STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(Self { before })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = fs::write(BPF_STATS, self.before.trim());
    }
}

/// The CPU's model name, from /proc/cpuinfo: what a helper call costs depends on it.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// The mitigations in force that make calls and returns dear (retpolines, return thunks,
/// SRSO), as /sys/devices/system/cpu/vulnerabilities/ names them: `name: state` for each
/// that is not "Not affected".
pub fn mitigations() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/devices/system/cpu/vulnerabilities") else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let state = std::fs::read_to_string(entry.path()).ok()?;
            let state = state.trim();
            (state != "Not affected")
                .then(|| format!("{}: {state}", entry.file_name().to_string_lossy()))
        })
        .collect();
    found.sort();
    found
}
