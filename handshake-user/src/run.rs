//! `handshake run`: load, configure, attach, show the counters every second, detach on
//! Ctrl-C or SIGTERM.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    interface,
    kernel_tcp::KernelTcp,
    loader::{Handshake, Mode},
    mss,
};

pub struct RunOptions {
    pub iface: String,
    pub ports: Vec<u16>,
    pub mode: Mode,
    pub mss: Option<u32>,
    pub timestamps: bool,
    pub interval: Duration,
}

/// Checks every input, then loads and attaches: a bad value changes nothing.
pub fn prepare(options: &RunOptions) -> anyhow::Result<(Handshake, KernelTcp)> {
    let mtu = interface::mtu(&options.iface)?;
    let (mss_ipv4, mss_ipv6) = mss::choose(&options.iface, mtu, options.mss)?;
    let kernel = KernelTcp::read()?;
    let config = kernel.config(mss_ipv4, mss_ipv6, options.timestamps)?;
    let mut handshake = Handshake::load()?;
    handshake.set_config(&config)?;
    handshake.set_ports(&options.ports)?;
    Ok((handshake, kernel))
}

pub async fn run(options: RunOptions) -> anyhow::Result<()> {
    let (mut handshake, kernel) = prepare(&options)?;
    for line in kernel.describe() {
        println!("{line}");
    }
    let mut logger = handshake.take_logger()?;
    let mode = handshake.attach(&options.iface, options.mode)?;
    let ports: Vec<String> = options.ports.iter().map(u16::to_string).collect();
    println!(
        "handshake protects TCP ports {} on {} ({} XDP); Ctrl-C or SIGTERM detaches",
        ports.join(","),
        options.iface,
        format!("{mode:?}").to_lowercase()
    );

    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler failed")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("installing the SIGINT handler failed")?;
    let mut ticks = tokio::time::interval(options.interval);
    // The program logs only rare failures; reading its ring buffer 10 times a second is
    // plenty and needs no fd registration.
    let mut log_ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.tick().await;
    let mut last = (handshake.counters()?, Instant::now());
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = log_ticks.tick() => logger.flush(),
            _ = ticks.tick() => {
                let now = (handshake.counters()?, Instant::now());
                println!("\n{}", now.0.table(&last.0, now.1.duration_since(last.1).as_secs_f64()));
                last = now;
            }
        }
    }
    handshake.detach()?;
    let totals = handshake.counters()?;
    println!(
        "\ndetached from {}; totals:\n{}",
        options.iface,
        totals.table(&totals, 1.0)
    );
    Ok(())
}
