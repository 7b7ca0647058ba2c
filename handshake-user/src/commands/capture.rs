//! `handshake capture`: frames the XDP program samples, written as a pcap file; and the
//! sampling session `handshake top` shares.
//!
//! The program samples only while a session runs: the session sets `Config::sample_*`
//! (which verdicts, 1 in how many, its pid) and clears them when it ends, on Ctrl-C,
//! SIGTERM and SIGHUP and on any error too. A session killed with SIGKILL cannot: sampling
//! then stays on (each sampled frame costs about five helper calls) until the next session
//! or `capture --stop` turns it off, and `status` says so, naming the pid that is gone.

use std::{
    collections::BTreeMap,
    fs::File,
    io::BufWriter,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::maps::{MapData, RingBuf};
use handshake_common::{
    config::Config,
    counters::ALL,
    sample::{SAMPLE_BYTES, Sample},
};

use crate::{
    pcap,
    pins::PinRoot,
    state::{self, Pinned},
};

/// Who sampling is on for, as `status` reports it.
pub struct Sampling {
    /// The pid of the session that turned it on.
    pub owner: u32,
    /// Whether that process still runs; `false`: it was killed and left sampling on.
    pub running: bool,
}

/// Whether `config` has sampling on, and for whom.
pub fn sampling(config: &Config) -> Option<Sampling> {
    (config.sample_counters != 0).then(|| Sampling {
        owner: config.sample_owner,
        running: alive(config.sample_owner),
    })
}

/// Whether `pid` is a running `handshake` (a pid reused by another program is not).
fn alive(pid: u32) -> bool {
    pid != 0
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == "handshake")
}

fn clear(config: &mut Config) {
    config.sample_counters = 0;
    config.sample_every = 0;
    config.sample_owner = 0;
}

/// How often a session drains the ring buffer: 1 MiB holds about 6,000 samples, so up to
/// ~120,000 samples a second are read before the program has to skip any.
const DRAIN_EVERY: Duration = Duration::from_millis(50);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Ctrl-C, SIGTERM and SIGHUP end the session (after which sampling is turned off) rather
/// than the process. No SA_RESTART: the wait for samples returns at once.
fn stop_on_signals() {
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as *const () as usize;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Sampling on one interface, turned off again when dropped.
pub struct Session {
    root: PinRoot,
    pinned: Pinned,
    ring: RingBuf<MapData>,
    pid: u32,
    pub every: u32,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC (the program's clock), in nanoseconds.
    to_unix: u64,
    on: bool,
}

impl Session {
    /// Turns sampling on for the verdicts of `counters` (`Config::sample_counters` bits),
    /// 1 in `every`; also returns a note when it took over from a session that is gone.
    pub fn start(
        root: &PinRoot,
        iface: &str,
        counters: u64,
        every: u32,
    ) -> anyhow::Result<(Self, Option<String>)> {
        stop_on_signals();
        let mut pinned = state::protected(root, iface)?;
        let mut ring = pinned.maps.take_samples()?;
        let pid = std::process::id();
        let _lock = root.lock()?;
        let mut config = pinned.maps.config()?;
        let mut note = None;
        if let Some(on) = sampling(&config) {
            if on.running {
                bail!(
                    "a capture or top (pid {}) samples {iface} already; one at a time: end it first (or {})",
                    on.owner,
                    root.command(&format!("capture --iface {iface} --stop"))
                );
            }
            note = Some(format!(
                "{iface}: sampling was left on by a capture that is gone (pid {}, killed?); this one takes it over",
                on.owner
            ));
        }
        // What a session that is gone left in the ring is not this one's.
        while ring.next().is_some() {}
        config.sample_counters = counters;
        config.sample_every = every.max(1);
        config.sample_owner = pid;
        pinned.maps.set_config(&config)?;
        let to_unix = clock_ns(libc::CLOCK_REALTIME).wrapping_sub(clock_ns(libc::CLOCK_MONOTONIC));
        let session = Self {
            root: root.clone(),
            pinned,
            ring,
            pid,
            every: every.max(1),
            to_unix,
            on: true,
        };
        Ok((session, note))
    }

    /// Samples 1 in `every` frames from now on.
    pub fn set_every(&mut self, every: u32) -> anyhow::Result<()> {
        let pid = self.pid;
        self.change(|config| {
            if config.sample_owner == pid {
                config.sample_every = every;
            }
        })?;
        self.every = every;
        Ok(())
    }

    fn change(&mut self, change: impl FnOnce(&mut Config)) -> anyhow::Result<()> {
        let _lock = self.root.lock()?;
        let mut config = self.pinned.maps.config()?;
        change(&mut config);
        self.pinned.maps.set_config(&config)
    }

    /// The samples the program wrote, after waiting `timeout` (at most `DRAIN_EVERY`, or
    /// until a signal). The program does not wake its reader (see handshake-ebpf's
    /// sample.rs): the ring is drained every `DRAIN_EVERY`.
    pub fn wait(&mut self, timeout: Duration) -> anyhow::Result<Vec<Sample>> {
        let ms = timeout.min(DRAIN_EVERY).as_millis() as i32;
        // A sleep that a signal ends (nanosleep would be restarted by std's sleep).
        if unsafe { libc::poll(std::ptr::null_mut(), 0, ms) } < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(error).context("waiting for samples failed");
            }
        }
        let mut samples = Vec::new();
        while let Some(item) = self.ring.next() {
            if item.len() >= size_of::<Sample>() {
                samples.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Sample>()) });
            }
        }
        Ok(samples)
    }

    /// When the program saw `sample`, in nanoseconds since 1970 (UTC).
    pub fn unix_ns(&self, sample: &Sample) -> u64 {
        sample.time_ns.wrapping_add(self.to_unix)
    }

    /// Turns sampling off (unless another session took it over since).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.on {
            return Ok(());
        }
        self.on = false;
        let pid = self.pid;
        self.change(|config| {
            if config.sample_owner == pid {
                clear(config);
            }
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            log::error!(
                "turning sampling off on {} failed: {error:#}; {} does",
                self.pinned.iface,
                self.root
                    .command(&format!("capture --iface {} --stop", self.pinned.iface))
            );
        }
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut time: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(clock, &mut time) };
    time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64
}

/// When a capture ends by itself.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    Frames(u64),
    Duration(Duration),
    /// At Ctrl-C or SIGTERM.
    Signal,
}

/// The name of the counter a sample was counted in.
pub fn counter_name(counter: u32) -> &'static str {
    ALL.get(counter as usize)
        .map_or("unknown", |(_, name, _)| name)
}

/// `handshake capture`: what it wrote.
pub fn capture(
    root: &PinRoot,
    iface: &str,
    counters: u64,
    every: u32,
    limit: Limit,
    path: &Path,
) -> anyhow::Result<String> {
    let file = File::create(path).with_context(|| format!("creating {} failed", path.display()))?;
    let mut writer = pcap::Writer::new(BufWriter::new(file), SAMPLE_BYTES as u32)?;
    let (mut session, note) = Session::start(root, iface, counters, every)?;
    if let Some(note) = note {
        log::warn!("{note}");
    }
    let rate = if every > 1 {
        format!("1 in {every}")
    } else {
        "every one".to_owned()
    };
    log::info!(
        "{iface}: capturing ({rate} of the frames asked for) into {}; Ctrl-C ends",
        path.display()
    );
    let started = Instant::now();
    let mut written = 0u64;
    let mut by_counter = BTreeMap::<u32, u64>::new();
    'capture: while !stopped() {
        let wait = match limit {
            Limit::Duration(duration) => match duration.checked_sub(started.elapsed()) {
                Some(left) => left.min(Duration::from_millis(200)),
                None => break,
            },
            _ => Duration::from_millis(200),
        };
        for sample in session.wait(wait)? {
            if matches!(limit, Limit::Frames(frames) if written >= frames) {
                break 'capture;
            }
            let captured = (sample.captured as usize).min(SAMPLE_BYTES);
            writer
                .frame(
                    session.unix_ns(&sample),
                    &sample.data[..captured],
                    sample.len,
                )
                .with_context(|| format!("writing {} failed", path.display()))?;
            written += 1;
            *by_counter.entry(sample.counter).or_default() += 1;
        }
        if matches!(limit, Limit::Frames(frames) if written >= frames) {
            break;
        }
    }
    session.stop()?;
    writer
        .finish()
        .with_context(|| format!("writing {} failed", path.display()))?;
    let verdicts: Vec<String> = by_counter
        .iter()
        .map(|(counter, frames)| format!("{} {frames}", counter_name(*counter)))
        .collect();
    Ok(format!(
        "{iface}: wrote {written} frames to {}{}; sampling is off",
        path.display(),
        if verdicts.is_empty() {
            String::new()
        } else {
            format!(" ({})", verdicts.join(", "))
        }
    ))
}

/// `handshake capture --stop`: turns sampling off, whoever turned it on.
pub fn stop(root: &PinRoot, iface: &str) -> anyhow::Result<String> {
    let mut pinned = state::protected(root, iface)?;
    let _lock = root.lock()?;
    let mut config = pinned.maps.config()?;
    let Some(on) = sampling(&config) else {
        return Ok(format!("{iface}: sampling is off; nothing to stop"));
    };
    clear(&mut config);
    pinned.maps.set_config(&config)?;
    Ok(if on.running {
        format!(
            "{iface}: sampling is off; the capture that runs (pid {}) gets no more frames",
            on.owner
        )
    } else {
        format!(
            "{iface}: sampling is off (a capture that is gone, pid {}, had left it on)",
            on.owner
        )
    })
}
