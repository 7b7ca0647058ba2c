//! `handshake run`: load, configure, attach, show the counters every second (and serve
//! metrics when asked), detach on Ctrl-C or SIGTERM.

use std::{
    cell::RefCell,
    io::Write as _,
    net::SocketAddr,
    path::Path,
    rc::Rc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use handshake_common::config::Config;
use tokio::signal::unix::{SignalKind, signal};

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

/// Prints a line to stdout, ignoring a reader that went away (`run ... | head -2`): the
/// output is a courtesy, protection must not stop because nobody reads it.
fn say(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Runs inside a `LocalSet` (the metrics server's tasks share the running maps).
pub async fn run(
    all: Vec<Settings>,
    interval: Duration,
    metrics_address: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let (configs, kernel) = validate_all(&all)?;
    let metrics_listener = match metrics_address {
        Some(address) => Some(metrics::bind(address).await?),
        None => None,
    };
    let mut running = Running {
        interfaces: Vec::new(),
    };
    let mut loggers = Vec::new();
    let mut done: Vec<String> = kernel.describe().into();
    // Every interface is attached before anything is printed as done; an error part way
    // drops `running`, which detaches the ones attached so far.
    for (settings, config) in all.iter().zip(&configs) {
        let mut handshake = prepare(settings, config, None)?;
        loggers.push(handshake.take_logger()?);
        let mode = handshake.attach(&settings.iface, settings.mode)?;
        done.push(format!(
            "handshake protects TCP ports {} on {} ({} XDP); Ctrl-C or SIGTERM detaches",
            ports::join(&settings.ports),
            settings.iface,
            mode.name()
        ));
        running.interfaces.push((settings.iface.clone(), handshake));
    }
    let running = Rc::new(RefCell::new(running));
    let server = match metrics_listener {
        Some(listener) => {
            let running = running.clone();
            let render: metrics::Render =
                Rc::new(move || metrics::render(&running.borrow().sample()?, &[]));
            done.push(format!(
                "serving metrics on http://{}/metrics",
                listener.local_addr()?
            ));
            Some(metrics::serve_forever(listener, render))
        }
        None => None,
    };
    for line in done {
        say(&line);
    }
    watch(&running, &mut loggers, interval, server).await?;
    for (iface, handshake) in &mut running.borrow_mut().interfaces {
        handshake.detach()?;
        let totals = handshake.counters()?;
        say(&format!(
            "\ndetached from {iface}; totals:\n{}",
            totals.table(&totals, 1.0)
        ));
    }
    Ok(())
}

async fn watch(
    running: &RefCell<Running>,
    loggers: &mut [aya_log::EbpfLogger<&'static dyn log::Log>],
    interval: Duration,
    server: Option<impl Future<Output = ()>>,
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
    let mut last = (running.borrow().sample()?, Instant::now());
    let server = async {
        match server {
            Some(server) => server.await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(server);
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            _ = log_ticks.tick() => loggers.iter_mut().for_each(|logger| logger.flush()),
            () = &mut server => {}
            _ = ticks.tick() => {
                let now = (running.borrow().sample()?, Instant::now());
                let seconds = now.1.duration_since(last.1).as_secs_f64();
                say(&format!("\n{}", crate::stats::table(&now.0, &last.0, seconds).trim_end()));
                last = now;
            }
        }
    }
}
