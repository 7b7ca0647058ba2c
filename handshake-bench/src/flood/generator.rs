//! Driving the `flood` program: check the interface, configure the program, then call
//! BPF_PROG_TEST_RUN in live-frames mode in paced chunks until the packet or time bound.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail, ensure};
use aya::{
    Ebpf,
    maps::Array,
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp},
};
use handshake::{
    interface,
    lab::{CLIENT_IFACE, Lab, SERVER_IFACE, SERVER_V4, run_in},
};
use handshake_common::flood::{FRAME_LEN, FloodConfig, STATE_SENT, template};

use super::FLOOD_OBJECT;

/// No flood runs longer than this or sends more than this, whatever it is asked.
pub const MAX_DURATION: Duration = Duration::from_secs(120);
pub const MAX_PACKETS: u64 = 500_000_000;
/// Runs per BPF_PROG_TEST_RUN call: each call costs tens of milliseconds of set-up, so
/// calls are long; a paced run drops what is not yet due, so a call lasts about as long
/// at any rate (some tens of milliseconds), and a stop request is seen within that.
const CHUNK: u32 = 1 << 20;
const CHUNK_FULL_SPEED: u32 = 1 << 16;
/// Frames the kernel builds and flushes to the device at a time (live-frames batch).
const BATCH: u32 = 64;

/// One flood: to the lab's server on `port`, at `rate` SYNs/s (None: as fast as the
/// generator can), until `packets` are sent, `duration` has passed, or `stop` is set.
#[derive(Clone, Debug)]
pub struct Flood {
    pub port: u16,
    pub rate: Option<u64>,
    pub packets: u64,
    pub duration: Duration,
    pub stop: Arc<AtomicBool>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct FloodReport {
    /// SYNs the program stamped and returned XDP_TX (offered to the veth).
    pub sent: u64,
    pub elapsed: Duration,
}

/// Runs `flood` from the lab's client namespace, out of its veth, and waits for it.
pub fn send(lab: &Lab, flood: Flood) -> anyhow::Result<FloodReport> {
    ensure!(
        flood.packets <= MAX_PACKETS,
        "a flood is limited to {MAX_PACKETS} SYNs, not {}",
        flood.packets
    );
    ensure!(
        flood.duration <= MAX_DURATION,
        "a flood is limited to {MAX_DURATION:?}, not {:?}",
        flood.duration
    );
    let server_mac = lab_mac(lab, &lab.server, SERVER_IFACE)?;
    check_lab_veth(lab, &lab.client, CLIENT_IFACE)?;
    run_in(&lab.client, move || drive(&flood, server_mac))?
}

/// Refuses to flood anything but the veth `Lab::create` made: the namespace must be one
/// the lab created, and the interface there must be a veth with the lab's name.
fn check_lab_veth(lab: &Lab, ns: &str, iface: &str) -> anyhow::Result<()> {
    ensure!(
        ns == lab.client && ns.starts_with("hs-"),
        "refusing to flood from namespace {ns}: not a lab namespace"
    );
    ensure!(
        iface == CLIENT_IFACE,
        "refusing to flood out of {iface}: only the lab's {CLIENT_IFACE} veth"
    );
    let details = lab.output(ns, &["ip", "-d", "-j", "link", "show", "dev", iface])?;
    ensure!(
        details.contains("\"info_kind\":\"veth\""),
        "refusing to flood out of {iface} in {ns}: it is not a veth ({details})"
    );
    Ok(())
}

/// The MAC address of `iface` in namespace `ns`.
fn lab_mac(lab: &Lab, ns: &str, iface: &str) -> anyhow::Result<[u8; 6]> {
    let details = lab.output(ns, &["ip", "-j", "link", "show", "dev", iface])?;
    let start = details
        .find("\"address\":\"")
        .context("ip -j link shows no address")?
        + 11;
    let text = details
        .get(start..start + 17)
        .context("short MAC address")?;
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(text.split(':')) {
        *byte = u8::from_str_radix(part, 16).with_context(|| format!("bad MAC {text}"))?;
    }
    Ok(mac)
}

/// Inside the client namespace: load, configure, and send in chunks.
fn drive(flood: &Flood, server_mac: [u8; 6]) -> anyhow::Result<FloodReport> {
    let ifindex = interface::index(CLIENT_IFACE)?;
    let client_mac = interface::mac(CLIENT_IFACE)?;
    let frame = template(client_mac, server_mac, SERVER_V4.octets(), flood.port);
    let mut ebpf = Ebpf::load(FLOOD_OBJECT).context("loading the flood object failed")?;
    let mut config: Array<_, FloodConfig> = Array::try_from(
        ebpf.map_mut("FLOOD_CONFIG")
            .ok_or_else(|| anyhow!("no FLOOD_CONFIG map"))?,
    )?;
    let limit = flood.packets;
    let interval_ns = flood.rate.map_or(0, |rate| 1_000_000_000 / rate.max(1));
    config.set(0, FloodConfig::new(frame, ifindex, limit, interval_ns), 0)?;
    let state: Array<_, u64> = Array::try_from(
        ebpf.take_map("FLOOD_STATE")
            .ok_or_else(|| anyhow!("no FLOOD_STATE map"))?,
    )?;
    let program: &mut Xdp = ebpf
        .program_mut("flood")
        .ok_or_else(|| anyhow!("no flood program"))?
        .try_into()?;
    program
        .load()
        .context("the verifier rejected the flood program")?;

    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
    // egress_ifindex. The ingress interface is the one XDP_TX sends out of.
    let mut context = [0u8; 24];
    context[4..8].copy_from_slice(&(FRAME_LEN as u32).to_ne_bytes());
    context[12..16].copy_from_slice(&ifindex.to_ne_bytes());

    let started = Instant::now();
    let chunk = if flood.rate.is_some() {
        CHUNK
    } else {
        CHUNK_FULL_SPEED
    };
    let sent = || state.get(&STATE_SENT, 0);
    while sent()? < limit
        && started.elapsed() < flood.duration
        && !flood.stop.load(Ordering::Relaxed)
    {
        program
            .test_run(TestRunOptions {
                data_in: Some(&frame),
                ctx_in: Some(&context),
                repeat: chunk,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..TestRunOptions::new()
            })
            .context("BPF_PROG_TEST_RUN (live frames) failed")?;
    }
    let elapsed = started.elapsed();
    let sent = sent()?;
    if sent > limit {
        bail!("the flood program sent {sent} SYNs, more than its limit {limit}");
    }
    Ok(FloodReport { sent, elapsed })
}
