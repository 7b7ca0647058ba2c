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
    follow_host::{self, HostNow},
    interface,
    kernel_tcp::KernelTcp,
    loader::{Handshake, Mode},
    metrics, ports,
    settings::Settings,
    source_lists::{self, List},
    stats::{Gone, Sample},
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
    source_lists::add(&mut handshake.maps, List::Allow, &settings.allow)?;
    source_lists::add(&mut handshake.maps, List::Deny, &settings.deny)?;
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
    interfaces: Vec<Protected>,
}

struct Protected {
    iface: String,
    mode: Mode,
    handshake: Handshake,
    /// Why the interface lost its program (deleted, or deleted and created again), until
    /// it is attached again.
    lost: Option<String>,
}

impl Running {
    fn sample(&self) -> anyhow::Result<Vec<Sample>> {
        self.interfaces
            .iter()
            .map(|protected| {
                Ok(Sample {
                    iface: protected.iface.clone(),
                    counters: protected.handshake.counters()?,
                    ports: protected.handshake.maps.ports.counters()?,
                    dry_run: protected.handshake.maps.config()?.dry_run != 0,
                    limits: crate::rate_limits::read(&protected.handshake.maps)?,
                })
            })
            .collect()
    }

    /// The exposition: counters of the protected interfaces, and the lost ones as such.
    fn render(&self) -> anyhow::Result<String> {
        let (protected, lost): (Vec<Sample>, Vec<Sample>) = self
            .sample()?
            .into_iter()
            .partition(|sample| self.lost(&sample.iface).is_none());
        let lost: Vec<Gone> = lost
            .into_iter()
            .map(|sample| Gone {
                problem: self.lost(&sample.iface).unwrap_or_default().to_owned(),
                iface: sample.iface,
            })
            .collect();
        metrics::render(&protected, &lost)
    }

    fn lost(&self, iface: &str) -> Option<&str> {
        self.interfaces
            .iter()
            .find(|protected| protected.iface == iface)
            .and_then(|protected| protected.lost.as_deref())
    }

    /// What the programs were given from the host, as `HostNow` read it (`follow_host.rs`).
    fn follow_host(&mut self, now: &HostNow) {
        let programs = self
            .interfaces
            .iter_mut()
            .map(|protected| (protected.iface.as_str(), &mut protected.handshake));
        for line in follow_host::follow(now, programs) {
            log::warn!("{line}");
        }
    }

    /// An interface that is deleted takes its XDP program with it, and one created again
    /// under the same name starts without: say so once, and attach again as soon as an
    /// interface of that name is back.
    fn follow_interfaces(&mut self, now: &HostNow) {
        for protected in &mut self.interfaces {
            let Ok(id) = protected.handshake.program_id() else {
                continue;
            };
            let iface = protected.iface.as_str();
            let running = |program: &&interface::XdpProgram| program.iface == iface;
            if now
                .xdp
                .iter()
                .find(running)
                .is_some_and(|running| running.id == id)
            {
                continue;
            }
            if protected.lost.is_none() {
                let lost = format!(
                    "{iface} was deleted or recreated: protection is gone; handshake attaches again when an interface {iface} is back"
                );
                log::warn!("{lost}");
                protected.lost = Some(lost);
            }
            let _ = protected.handshake.detach();
            if interface::index(iface).is_err() {
                continue;
            }
            match protected.handshake.attach(iface, protected.mode) {
                Ok(mode) => {
                    log::warn!("{iface} is back: protected again ({} XDP)", mode.name());
                    protected.lost = None;
                }
                Err(error) => {
                    let lost = format!("{iface} is back but attaching failed: {error:#}");
                    if protected.lost.as_deref() != Some(lost.as_str()) {
                        log::warn!("{lost}");
                        protected.lost = Some(lost);
                    }
                }
            }
        }
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
    // Before the checks: reading netfilter's rules needs CAP_NET_ADMIN too, and an
    // unprivileged run should hear "permission denied", not a warning about those rules.
    crate::privileges::require("loading and attaching XDP")?;
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
            "handshake protects TCP ports {} on {} ({} XDP{}); Ctrl-C or SIGTERM detaches",
            ports::join(&settings.ports),
            settings.iface,
            mode.name(),
            settings.dry_run_note()
        ));
        running.interfaces.push(Protected {
            iface: settings.iface.clone(),
            mode: settings.mode,
            handshake,
            lost: None,
        });
    }
    let running = Rc::new(RefCell::new(running));
    let server = match metrics_listener {
        Some(listener) => {
            let running = running.clone();
            let render: metrics::Render = Rc::new(move || running.borrow().render());
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
    for Protected {
        iface, handshake, ..
    } in &mut running.borrow_mut().interfaces
    {
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
    // Asking the kernel what each interface runs costs an `ip` process: once a second.
    let mut follow_ticks = tokio::time::interval(Duration::from_secs(1));
    // Not at once: everything was read for the attach a moment ago.
    follow_ticks.tick().await;
    // The host as read off this loop (`HostNow`), once a second.
    let mut reading = None;
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
            // Read off this loop (each read runs `ip`), so that a slow host never holds up
            // the counters, a scrape or SIGTERM.
            _ = follow_ticks.tick(), if reading.is_none() => {
                let interfaces = running.borrow().interfaces.iter().map(|p| p.iface.clone()).collect();
                reading = Some(tokio::task::spawn_blocking(move || HostNow::read(interfaces)));
            }
            now = async { reading.as_mut().expect("checked").await }, if reading.is_some() => {
                reading = None;
                if let Ok(now) = now {
                    let mut running = running.borrow_mut();
                    running.follow_interfaces(&now);
                    running.follow_host(&now);
                }
            }
            _ = ticks.tick() => {
                let now = (running.borrow().sample()?, Instant::now());
                let seconds = now.1.duration_since(last.1).as_secs_f64();
                say(&format!("\n{}", crate::stats::table(&now.0, &last.0, seconds).trim_end()));
                last = now;
            }
        }
    }
}
