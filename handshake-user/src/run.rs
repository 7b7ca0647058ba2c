//! `handshake run`: load, configure, attach, show the counters every second (and serve
//! metrics when asked), detach on Ctrl-C or SIGTERM.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use handshake_common::config::Config;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};

use crate::{
    kernel_tcp::KernelTcp, loader::Handshake, metrics, ports, settings::Settings, stats::Sample,
};

/// Loads and configures for `settings` with the `config` its validation gave (pinning
/// under `pin_dir` when given).
pub fn prepare(
    settings: &Settings,
    config: &Config,
    pin_dir: Option<&Path>,
) -> anyhow::Result<Handshake> {
    let mut handshake = Handshake::load_with_pins(pin_dir)?;
    handshake.set_config(config)?;
    handshake.set_ports(&settings.ports)?;
    Ok(handshake)
}

/// Checks every interface before the first is loaded: a bad one changes nothing.
pub fn validate_all(all: &[Settings]) -> anyhow::Result<(Vec<Config>, KernelTcp)> {
    let mut configs = Vec::new();
    let mut kernel = None;
    for settings in all {
        let (config, read) = settings.validate()?;
        configs.push(config);
        kernel.get_or_insert(read);
    }
    Ok((
        configs,
        kernel.ok_or_else(|| anyhow::anyhow!("no interface to protect"))?,
    ))
}

/// One attachment per interface, all detached when this returns.
struct Running {
    interfaces: Vec<(String, Handshake)>,
}

impl Running {
    fn sample(&self) -> anyhow::Result<Vec<Sample>> {
        self.interfaces
            .iter()
            .map(|(iface, handshake)| {
                Ok(Sample {
                    iface: iface.clone(),
                    counters: handshake.counters()?,
                    ports: handshake.maps.ports.counters()?,
                })
            })
            .collect()
    }
}

pub async fn run(
    all: Vec<Settings>,
    interval: Duration,
    metrics_address: Option<String>,
) -> anyhow::Result<()> {
    let (configs, kernel) = validate_all(&all)?;
    let metrics_listener = match &metrics_address {
        Some(address) => Some(metrics::bind(address).await?),
        None => None,
    };
    let mut running = Running {
        interfaces: Vec::new(),
    };
    let mut loggers = Vec::new();
    for line in kernel.describe() {
        println!("{line}");
    }
    for (settings, config) in all.iter().zip(&configs) {
        let mut handshake = prepare(settings, config, None)?;
        loggers.push(handshake.take_logger()?);
        let mode = handshake.attach(&settings.iface, settings.mode)?;
        println!(
            "handshake protects TCP ports {} on {} ({} XDP); Ctrl-C or SIGTERM detaches",
            ports::join(&settings.ports),
            settings.iface,
            mode.name()
        );
        running.interfaces.push((settings.iface.clone(), handshake));
    }
    if let Some(address) = &metrics_address {
        println!("serving metrics on http://{address}/metrics");
    }
    watch(&running, &mut loggers, interval, metrics_listener.as_ref()).await?;
    for (iface, handshake) in &mut running.interfaces {
        handshake.detach()?;
        let totals = handshake.counters()?;
        println!(
            "\ndetached from {iface}; totals:\n{}",
            totals.table(&totals, 1.0)
        );
    }
    Ok(())
}

async fn watch(
    running: &Running,
    loggers: &mut [aya_log::EbpfLogger<&'static dyn log::Log>],
    interval: Duration,
    metrics_listener: Option<&TcpListener>,
) -> anyhow::Result<()> {
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler failed")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("installing the SIGINT handler failed")?;
    let mut ticks = tokio::time::interval(interval);
    ticks.tick().await;
    // The program logs only rare failures; reading its ring buffer 10 times a second is
    // plenty and needs no fd registration.
    let mut log_ticks = tokio::time::interval(Duration::from_millis(100));
    let mut last = (running.sample()?, Instant::now());
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            _ = log_ticks.tick() => loggers.iter_mut().for_each(|logger| logger.flush()),
            accepted = accept(metrics_listener) => {
                if let Err(error) = metrics::serve(accepted?, || metrics::render(&running.sample()?)).await {
                    log::warn!("a metrics request failed: {error:#}");
                }
            }
            _ = ticks.tick() => {
                let now = (running.sample()?, Instant::now());
                let seconds = now.1.duration_since(last.1).as_secs_f64();
                println!("\n{}", crate::stats::table(&now.0, &last.0, seconds).trim_end());
                last = now;
            }
        }
    }
}

/// The next metrics connection, or never when metrics are off.
async fn accept(listener: Option<&TcpListener>) -> anyhow::Result<tokio::net::TcpStream> {
    match listener {
        Some(listener) => Ok(listener.accept().await?.0),
        None => std::future::pending().await,
    }
}
