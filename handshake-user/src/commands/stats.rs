//! `handshake stats`: totals and per-second rates from the pinned maps, per interface and
//! per port, as a table, redrawn with `--watch`, or as JSON (schema in README.md).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use anyhow::bail;
use handshake_common::counters::{ALL, PortCounters};
use serde_json::{Value, json};

use crate::{
    counters::Snapshot,
    pins::PinRoot,
    rate_limits::{self, Limits},
    state::{self, Inspected, Pinned},
};

/// One interface's counters at one moment.
pub struct Sample {
    pub iface: String,
    pub counters: Snapshot,
    pub ports: BTreeMap<u16, PortCounters>,
    /// Verdicts counted, not enforced (`handshake dry-run`).
    pub dry_run: bool,
    /// The SYN rate limits that are on (`handshake limit`).
    pub limits: Limits,
}

/// An attached interface whose pins protect nothing any more, and why.
pub struct Gone {
    pub iface: String,
    pub problem: String,
}

/// Reads every attached interface (or just `only`), each checked against the kernel: one
/// that is not protected any more is returned in `Gone`, never as counters.
pub fn sample(root: &PinRoot, only: Option<&str>) -> anyhow::Result<(Vec<Sample>, Vec<Gone>)> {
    if let Some(iface) = only {
        let pinned = state::protected(root, iface)?;
        return Ok((vec![sample_of(&pinned)?], Vec::new()));
    }
    let mut samples = Vec::new();
    let mut gone = Vec::new();
    for iface in root.interfaces()? {
        match state::inspect(root, &iface) {
            Inspected::Protected(pinned) => samples.push(sample_of(&pinned)?),
            gone_or_stale => gone.push(Gone {
                problem: gone_or_stale.problem().unwrap_or_default().to_owned(),
                iface,
            }),
        }
    }
    Ok((samples, gone))
}

/// The protected interfaces (all, or just `only`) whose host changed since attach in what
/// the program cannot follow itself (`Pinned::changed_since_attach`), with what changed.
fn stale(root: &PinRoot, only: Option<&str>) -> Vec<(String, Vec<&'static str>)> {
    let interfaces = match only {
        Some(iface) => vec![iface.to_owned()],
        None => root.interfaces().unwrap_or_default(),
    };
    interfaces
        .into_iter()
        .filter_map(|iface| match state::inspect(root, &iface) {
            Inspected::Protected(pinned) => Some((iface, pinned.changed_since_attach())),
            _ => None,
        })
        .filter(|(_, changed)| !changed.is_empty())
        .collect()
}

fn sample_of(pinned: &Pinned) -> anyhow::Result<Sample> {
    Ok(Sample {
        iface: pinned.iface.clone(),
        counters: pinned.maps.counters()?,
        ports: pinned.maps.ports.counters()?,
        dry_run: pinned.maps.config()?.dry_run != 0,
        limits: rate_limits::read(&pinned.maps)?,
    })
}

const PORT_COUNTERS: [&str; 3] = ["syn_ack_sent", "ack_validated", "ack_dropped_forged"];

fn port_values(counters: &PortCounters) -> [u64; 3] {
    [
        counters.syn_ack_sent,
        counters.ack_validated,
        counters.ack_dropped_forged,
    ]
}

fn rate(now: u64, earlier: u64, seconds: f64) -> f64 {
    now.saturating_sub(earlier) as f64 / seconds.max(f64::EPSILON)
}

/// The earlier sample of the same interface, or zeros for one attached since.
fn earlier_of<'a>(earlier: &'a [Sample], iface: &str) -> Option<&'a Sample> {
    earlier.iter().find(|sample| sample.iface == iface)
}

pub fn table(now: &[Sample], earlier: &[Sample], seconds: f64) -> String {
    let mut text = String::new();
    for sample in now {
        let before = earlier_of(earlier, &sample.iface);
        if sample.dry_run {
            let _ = writeln!(
                text,
                "{}: DRY RUN: counted as they would be, every packet passed",
                sample.iface
            );
        } else {
            let _ = writeln!(text, "{}", sample.iface);
        }
        if !sample.limits.is_off() {
            let _ = writeln!(
                text,
                "{}: rate limits {}",
                sample.iface,
                sample.limits.describe()
            );
        }
        text.push_str(&sample.counters.table(
            &before.map_or_else(Snapshot::default, |b| b.counters),
            seconds,
        ));
        if !sample.ports.is_empty() {
            let _ = writeln!(
                text,
                "{:<8}{:>16}{:>16}{:>20}",
                "port", PORT_COUNTERS[0], PORT_COUNTERS[1], PORT_COUNTERS[2]
            );
        }
        for (port, counters) in &sample.ports {
            let old = before
                .and_then(|b| b.ports.get(port))
                .copied()
                .unwrap_or_default();
            let cells: Vec<String> = port_values(counters)
                .iter()
                .zip(port_values(&old))
                .map(|(&total, old)| format!("{total} ({:.0}/s)", rate(total, old, seconds)))
                .collect();
            let _ = writeln!(
                text,
                "{port:<8}{:>16}{:>16}{:>20}",
                cells[0], cells[1], cells[2]
            );
        }
        text.push('\n');
    }
    text
}

pub fn to_json(now: &[Sample], earlier: &[Sample], seconds: f64) -> Value {
    let interfaces: Vec<Value> = now
        .iter()
        .map(|sample| {
            let before = earlier_of(earlier, &sample.iface);
            let mut counters = serde_json::Map::new();
            for (counter, name, _) in ALL {
                let old = before.map_or(0, |b| b.counters.get(counter));
                let total = sample.counters.get(counter);
                counters.insert(
                    name.to_owned(),
                    json!({"total": total, "per_second": rate(total, old, seconds)}),
                );
            }
            let ports: Vec<Value> = sample
                .ports
                .iter()
                .map(|(port, values)| {
                    let old = port_values(
                        &before
                            .and_then(|b| b.ports.get(port))
                            .copied()
                            .unwrap_or_default(),
                    );
                    let mut entry = serde_json::Map::new();
                    entry.insert("port".to_owned(), json!(port));
                    for ((name, total), old) in
                        PORT_COUNTERS.iter().zip(port_values(values)).zip(old)
                    {
                        entry.insert(
                            (*name).to_owned(),
                            json!({"total": total, "per_second": rate(total, old, seconds)}),
                        );
                    }
                    Value::Object(entry)
                })
                .collect();
            json!({"iface": sample.iface, "dry_run": sample.dry_run, "limits": sample.limits.json(), "counters": counters, "ports": ports})
        })
        .collect();
    json!({"interval_seconds": seconds, "interfaces": interfaces})
}

/// Prints once (rates over one second), or every second with `watch` (redrawn in place on
/// a terminal, one table after another into a pipe, or one JSON document per line).
pub fn run(root: &PinRoot, only: Option<&str>, watch: bool, as_json: bool) -> anyhow::Result<()> {
    let (first, gone) = sample(root, only)?;
    for entry in &gone {
        log::warn!("{}: NOT PROTECTED: {}", entry.iface, entry.problem);
    }
    for (iface, changed) in stale(root, only) {
        log::warn!(
            "{iface}: STALE: changed since attach: {}; {} says how to refresh it",
            changed.join(", "),
            root.command("status")
        );
    }
    if first.is_empty() {
        if gone.is_empty() {
            bail!(
                "handshake protects nothing in this network namespace (no attachments in {}); {} shows what `handshake run` protects",
                root.path().display(),
                root.command("status")
            );
        }
        bail!(
            "no attached interface is protected (see above); {} lists them",
            root.command("status")
        );
    }
    let redraw = watch && !as_json && std::io::stdout().is_terminal();
    let mut earlier = (first, Instant::now());
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = (sample(root, only)?.0, Instant::now());
        let seconds = now.1.duration_since(earlier.1).as_secs_f64();
        match (as_json, redraw) {
            (true, _) => println!("{}", to_json(&now.0, &earlier.0, seconds)),
            // Home the cursor and clear the screen, so the table redraws in place.
            (false, true) => print!("\x1b[H\x1b[2J{}", table(&now.0, &earlier.0, seconds)),
            (false, false) => print!("{}", table(&now.0, &earlier.0, seconds)),
        }
        if !watch {
            return Ok(());
        }
        earlier = now;
    }
}
