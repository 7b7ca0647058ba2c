//! `handshake top`: where the SYNs answered, the SYNs dropped and the forged ACKs of the
//! last seconds come from (source prefixes, /24 and /48) and go to (destination ports),
//! from the frames the program samples (capture.rs's session). Redrawn every second like
//! `stats --watch`: in place on a terminal, one table after another into a pipe, or one
//! JSON document per line.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write as _,
    io::{IsTerminal as _, Write as _},
    net::{Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use handshake_common::{
    counters::Counter,
    sample::{Sample, TOP_COUNTERS},
};
use serde_json::{Value, json};

use crate::{
    capture::{Session, stopped},
    pins::PinRoot,
};

/// The tables, in order: title and JSON name.
const CLASSES: [(&str, &str); 3] = [
    ("SYNs answered", "syn_answered"),
    ("SYNs dropped", "syn_dropped"),
    ("forged ACKs", "ack_forged"),
];

/// Entries each list shows.
const TOP: usize = 10;

/// Samples per second above which `top` halves its sampling rate (1 in 2, 4, ...): the
/// ring buffer and this process keep up, and the program's cost stays bounded.
const MAX_PER_SECOND: usize = 20_000;

/// One sampled frame as `top` counts it: its table, source prefix and destination port.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub class: usize,
    pub source: String,
    pub port: u16,
}

/// Where a sampled frame came from and went to. An answered SYN was sampled as the
/// SYN-ACK it became: its client is the SYN-ACK's destination.
pub fn classify(sample: &Sample) -> Option<Seen> {
    let frame = &sample.data[..(sample.captured as usize).min(sample.data.len())];
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let (source, dest, tcp) = match ethertype {
        0x0800 => {
            let ihl = usize::from(frame.get(14)? & 0x0f) * 4;
            let bytes = |at: usize| -> Option<[u8; 4]> { frame.get(at..at + 4)?.try_into().ok() };
            let (src, dst) = (bytes(26)?, bytes(30)?);
            let prefix = |a: [u8; 4]| format!("{}/24", Ipv4Addr::new(a[0], a[1], a[2], 0));
            (prefix(src), prefix(dst), 14 + ihl)
        }
        0x86dd => {
            let bytes = |at: usize| -> Option<[u8; 16]> { frame.get(at..at + 16)?.try_into().ok() };
            let (src, dst) = (bytes(22)?, bytes(38)?);
            let prefix = |mut a: [u8; 16]| {
                a[6..].fill(0);
                format!("{}/48", Ipv6Addr::from(a))
            };
            (prefix(src), prefix(dst), 54)
        }
        _ => return None,
    };
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
    };
    let flags = *frame.get(tcp + 13)?;
    let (syn, ack) = (flags & 0x02 != 0, flags & 0x10 != 0);
    let counter = sample.counter;
    if counter == Counter::SynAckSent as u32 {
        return Some(Seen {
            class: 0,
            source: dest,
            port: port(tcp)?,
        });
    }
    let class = if counter == Counter::AckDroppedForged as u32 {
        2
    } else if syn && !ack {
        1
    } else {
        return None;
    };
    Some(Seen {
        class,
        source,
        port: port(tcp + 2)?,
    })
}

/// What one second's samples counted.
#[derive(Default)]
struct Second {
    sources: BTreeMap<(usize, String), u64>,
    ports: BTreeMap<(usize, u16), u64>,
}

/// The sums over the window, per table.
#[derive(Default)]
pub struct Window {
    pub seconds: usize,
    pub every: u32,
    pub totals: [u64; 3],
    pub sources: [Vec<(String, u64)>; 3],
    pub ports: [Vec<(u16, u64)>; 3],
}

fn ranked<K: Ord + Clone>(counts: BTreeMap<K, u64>) -> Vec<(K, u64)> {
    let mut ranked: Vec<(K, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked
}

fn window(seconds: &VecDeque<Second>, every: u32) -> Window {
    let mut sums = Window {
        seconds: seconds.len(),
        every,
        ..Window::default()
    };
    for class in 0..CLASSES.len() {
        let mut sources = BTreeMap::<String, u64>::new();
        let mut ports = BTreeMap::<u16, u64>::new();
        for second in seconds {
            for ((of, source), count) in &second.sources {
                if *of == class {
                    *sources.entry(source.clone()).or_default() += count;
                    sums.totals[class] += count;
                }
            }
            for ((of, port), count) in &second.ports {
                if *of == class {
                    *ports.entry(*port).or_default() += count;
                }
            }
        }
        sums.sources[class] = ranked(sources);
        sums.ports[class] = ranked(ports);
    }
    sums
}

pub fn table(iface: &str, window: &Window) -> String {
    let rate = if window.every > 1 {
        format!("1 in {} frames sampled: counts are samples", window.every)
    } else {
        "every frame sampled".to_owned()
    };
    let mut text = format!("{iface}: top of the last {} s, {rate}\n", window.seconds);
    for (class, (title, _)) in CLASSES.iter().enumerate() {
        let _ = writeln!(text, "{title}: {}", window.totals[class]);
        if window.totals[class] == 0 {
            continue;
        }
        let _ = writeln!(text, "  {:<44}{:>10}", "source", "samples");
        for (source, count) in window.sources[class].iter().take(TOP) {
            let _ = writeln!(text, "  {source:<44}{count:>10}");
        }
        let _ = writeln!(text, "  {:<44}{:>10}", "port", "samples");
        for (port, count) in window.ports[class].iter().take(TOP) {
            let _ = writeln!(text, "  {port:<44}{count:>10}");
        }
    }
    text
}

pub fn to_json(iface: &str, window: &Window) -> Value {
    let mut classes = serde_json::Map::new();
    for (class, (_, name)) in CLASSES.iter().enumerate() {
        let sources: Vec<Value> = window.sources[class]
            .iter()
            .take(TOP)
            .map(|(prefix, samples)| json!({"prefix": prefix, "samples": samples}))
            .collect();
        let ports: Vec<Value> = window.ports[class]
            .iter()
            .take(TOP)
            .map(|(port, samples)| json!({"port": port, "samples": samples}))
            .collect();
        classes.insert(
            (*name).to_owned(),
            json!({"samples": window.totals[class], "sources": sources, "ports": ports}),
        );
    }
    json!({
        "iface": iface,
        "window_seconds": window.seconds,
        "sample_every": window.every,
        "classes": classes,
    })
}

/// `handshake top`: redraws every second over the last `window_seconds`, until Ctrl-C or
/// SIGTERM, or after `seconds`.
pub fn run(
    root: &PinRoot,
    iface: &str,
    every: u32,
    window_seconds: usize,
    seconds: Option<Duration>,
    as_json: bool,
) -> anyhow::Result<()> {
    let (mut session, note) = Session::start(root, iface, TOP_COUNTERS, every)?;
    if let Some(note) = note {
        log::warn!("{note}");
    }
    log::info!(
        "{iface}: top: sampling the SYNs answered and dropped and the forged ACKs{}; Ctrl-C ends",
        if every > 1 {
            format!(", 1 in {every}")
        } else {
            String::new()
        }
    );
    let redraw = !as_json && std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut seconds_seen = VecDeque::<Second>::new();
    loop {
        let tick = Instant::now() + Duration::from_secs(1);
        let end = match seconds {
            Some(limit) => tick.min(started + limit),
            None => tick,
        };
        let mut second = Second::default();
        let mut samples = 0;
        while !stopped() {
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                break;
            };
            for sample in session.wait(left.min(Duration::from_millis(200)))? {
                samples += 1;
                if let Some(seen) = classify(&sample) {
                    *second.sources.entry((seen.class, seen.source)).or_default() += 1;
                    *second.ports.entry((seen.class, seen.port)).or_default() += 1;
                }
            }
        }
        seconds_seen.push_back(second);
        while seconds_seen.len() > window_seconds {
            seconds_seen.pop_front();
        }
        let sums = window(&seconds_seen, session.every);
        let text = match (as_json, redraw) {
            (true, _) => format!("{}\n", to_json(iface, &sums)),
            // Home the cursor and clear the screen, so the table redraws in place.
            (false, true) => format!("\x1b[H\x1b[2J{}", table(iface, &sums)),
            (false, false) => format!("{}\n", table(iface, &sums)),
        };
        // A reader that went away (`top | head`) ends top like Ctrl-C: sampling off.
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
        let done = seconds.is_some_and(|limit| started.elapsed() >= limit);
        if stopped() || done {
            break;
        }
        if samples > MAX_PER_SECOND && session.every < 1 << 20 {
            let every = session.every * 2;
            session.set_every(every)?;
        }
    }
    session.stop()
}

#[cfg(test)]
mod tests {
    use handshake_common::sample::SAMPLE_BYTES;

    use super::*;

    /// An Ethernet frame with IPv6 (`v6`) or IPv4 from `src` to `dst`, TCP ports and flags.
    fn sample(counter: Counter, v6: bool, ports: (u16, u16), flags: u8) -> Sample {
        let mut frame = vec![0u8; 12];
        if v6 {
            frame.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 20, 6, 64]);
            frame.extend_from_slice(&"2001:2:0:7::1".parse::<Ipv6Addr>().unwrap().octets());
            frame.extend_from_slice(&"2001:2:1::9".parse::<Ipv6Addr>().unwrap().octets());
        } else {
            frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0]);
            frame.extend_from_slice(&[198, 18, 3, 77, 198, 18, 0, 1]);
        }
        frame.extend_from_slice(&ports.0.to_be_bytes());
        frame.extend_from_slice(&ports.1.to_be_bytes());
        frame.extend_from_slice(&[0; 8]);
        frame.extend_from_slice(&[0x50, flags, 0, 0, 0, 0, 0, 0]);
        let mut data = [0; SAMPLE_BYTES];
        data[..frame.len()].copy_from_slice(&frame);
        Sample {
            time_ns: 0,
            counter: counter as u32,
            len: frame.len() as u32,
            captured: frame.len() as u32,
            _pad: 0,
            data,
        }
    }

    #[test]
    fn an_answered_syn_counts_for_its_client_and_service_port() {
        // Sampled as the SYN-ACK: from the service (port 443) to the client.
        let syn_ack = sample(Counter::SynAckSent, true, (443, 50000), 0x12);
        assert_eq!(
            classify(&syn_ack),
            Some(Seen {
                class: 0,
                source: "2001:2:1::/48".to_owned(),
                port: 443
            })
        );
        let forged = sample(Counter::AckDroppedForged, false, (50000, 443), 0x10);
        assert_eq!(
            classify(&forged),
            Some(Seen {
                class: 2,
                source: "198.18.3.0/24".to_owned(),
                port: 443
            })
        );
        let denied_syn = sample(Counter::DroppedDenied, false, (50000, 22), 0x02);
        assert_eq!(classify(&denied_syn).map(|seen| seen.class), Some(1));
        // A denied source's other packets are not SYNs dropped.
        let denied_ack = sample(Counter::DroppedDenied, false, (50000, 22), 0x10);
        assert_eq!(classify(&denied_ack), None);
    }

    #[test]
    fn json_ranks_by_count_then_key() {
        let mut second = Second::default();
        for (source, count) in [
            ("198.18.9.0/24", 1),
            ("198.18.1.0/24", 3),
            ("198.18.2.0/24", 3),
        ] {
            second.sources.insert((2, source.to_owned()), count);
        }
        second.ports.insert((2, 443), 7);
        let sums = window(&VecDeque::from([second]), 4);
        assert_eq!(
            to_json("eth0", &sums),
            json!({
                "iface": "eth0",
                "window_seconds": 1,
                "sample_every": 4,
                "classes": {
                    "syn_answered": {"samples": 0, "sources": [], "ports": []},
                    "syn_dropped": {"samples": 0, "sources": [], "ports": []},
                    "ack_forged": {
                        "samples": 7,
                        "sources": [
                            {"prefix": "198.18.1.0/24", "samples": 3},
                            {"prefix": "198.18.2.0/24", "samples": 3},
                            {"prefix": "198.18.9.0/24", "samples": 1}
                        ],
                        "ports": [{"port": 443, "samples": 7}]
                    }
                }
            })
        );
        assert!(
            table("eth0", &sums).starts_with(
                "eth0: top of the last 1 s, 1 in 4 frames sampled: counts are samples\n"
            )
        );
    }
}
