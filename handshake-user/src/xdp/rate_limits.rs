//! The SYN rate limits of one attachment (handshake-ebpf/src/rate_limit.rs): four rates
//! in `Config`, each on when its `LIMIT_*` bit is set. Changing them is one write of
//! CONFIG: live, and the buckets and counters stay.

use anyhow::bail;
use handshake_common::{
    config::{Config, LIMIT_DESTINATION, LIMIT_NETWORK, LIMIT_SOURCE, LIMIT_SYN_ACKS},
    rate_limit::Rate,
};
use serde_json::{Value, json};

use crate::maps::Maps;

/// The highest rate and burst a flag takes: far above any server's real SYN rate, far
/// below where the bucket arithmetic could overflow.
pub const MOST: u32 = 100_000_000;

/// Which limits are on, and their rates; `None` is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// SYNs a second from one source host (IPv4 /32, IPv6 /64).
    pub syn_per_source: Option<Rate>,
    /// SYNs a second from one source network (IPv4 /24, IPv6 /48).
    pub syn_per_network: Option<Rate>,
    /// SYN-ACKs a second from the interface.
    pub syn_acks_per_second: Option<Rate>,
    /// SYN-ACKs a second to one destination network (IPv4 /24, IPv6 /48).
    pub syn_acks_per_destination: Option<Rate>,
}

/// The flags (and config file keys, with `_`) in `Limits` order.
pub const FLAGS: [&str; 4] = [
    "--syn-per-source",
    "--syn-per-network",
    "--syn-acks-per-second",
    "--syn-acks-per-destination",
];

const BITS: [u8; 4] = [
    LIMIT_SOURCE,
    LIMIT_NETWORK,
    LIMIT_SYN_ACKS,
    LIMIT_DESTINATION,
];

/// What a flag of `limit set` says: a rate, `off`, or nothing (unchanged).
pub type Change = Option<Option<Rate>>;

impl Limits {
    fn rates(&self) -> [Option<Rate>; 4] {
        [
            self.syn_per_source,
            self.syn_per_network,
            self.syn_acks_per_second,
            self.syn_acks_per_destination,
        ]
    }

    fn from_rates([a, b, c, d]: [Option<Rate>; 4]) -> Limits {
        Limits {
            syn_per_source: a,
            syn_per_network: b,
            syn_acks_per_second: c,
            syn_acks_per_destination: d,
        }
    }

    pub fn is_off(&self) -> bool {
        self.rates().iter().all(Option::is_none)
    }

    /// The limits `config` holds.
    pub fn of(config: &Config) -> Limits {
        let rates = [
            config.syn_per_source,
            config.syn_per_network,
            config.syn_acks,
            config.syn_acks_per_destination,
        ];
        let mut on = [None; 4];
        for ((slot, rate), bit) in on.iter_mut().zip(rates).zip(BITS) {
            if config.limits & bit != 0 {
                *slot = Some(rate);
            }
        }
        Limits::from_rates(on)
    }

    /// `config` with these limits (and those off zeroed).
    pub fn apply(&self, config: &Config) -> Config {
        let [a, b, c, d] = self.rates();
        let bits = self
            .rates()
            .iter()
            .zip(BITS)
            .filter(|(rate, _)| rate.is_some())
            .fold(0, |bits, (_, bit)| bits | bit);
        Config {
            limits: bits,
            syn_per_source: a.unwrap_or_default(),
            syn_per_network: b.unwrap_or_default(),
            syn_acks: c.unwrap_or_default(),
            syn_acks_per_destination: d.unwrap_or_default(),
            ..*config
        }
    }

    /// These limits with `changes` (in `FLAGS` order) made.
    pub fn changed(&self, changes: [Change; 4]) -> Limits {
        let mut rates = self.rates();
        for (rate, change) in rates.iter_mut().zip(changes) {
            if let Some(change) = change {
                *rate = change;
            }
        }
        Limits::from_rates(rates)
    }

    /// "SYNs per source 20/s (burst 40), SYN-ACKs per destination /24 or /48 100/s
    /// (burst 100)", or "off".
    pub fn describe(&self) -> String {
        const WHAT: [&str; 4] = [
            "SYNs per source host",
            "SYNs per source network",
            "SYN-ACKs per second",
            "SYN-ACKs per destination network",
        ];
        let on: Vec<String> = WHAT
            .iter()
            .zip(self.rates())
            .filter_map(|(what, rate)| {
                rate.map(|rate| format!("{what} {}/s (burst {})", rate.per_second, rate.burst))
            })
            .collect();
        if on.is_empty() {
            "off".to_owned()
        } else {
            on.join(", ")
        }
    }

    /// `{"syn_per_source": {"per_second": 20, "burst": 40}, "syn_per_network": null, ...}`.
    pub fn json(&self) -> Value {
        let mut object = serde_json::Map::new();
        for (flag, rate) in FLAGS.iter().zip(self.rates()) {
            let key = flag.trim_start_matches("--").replace('-', "_");
            let value = rate.map_or(
                Value::Null,
                |rate| json!({"per_second": rate.per_second, "burst": rate.burst}),
            );
            object.insert(key, value);
        }
        Value::Object(object)
    }
}

/// `RATE[/BURST]`: SYNs (or SYN-ACKs) a second and the burst allowed above it (default:
/// one second's worth).
/// The error says what is wrong with `text`; the caller adds how to give it.
pub fn rate(text: &str) -> Result<Rate, String> {
    let number = |part: &str| {
        part.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MOST).contains(n))
    };
    let (rate, burst) = match text.split_once('/') {
        Some((rate, burst)) => (number(rate), number(burst)),
        None => (number(text), number(text)),
    };
    match (rate, burst) {
        (Some(per_second), Some(burst)) => Ok(Rate { per_second, burst }),
        _ => Err(format!(
            "{text:?} is not RATE[/BURST] with whole numbers from 1 to {MOST} (a second, and the burst above it)"
        )),
    }
}

pub fn parse_rate(flag: &str, text: &str) -> anyhow::Result<Rate> {
    rate(text).or_else(|reason| bail!("{flag} {reason}; give e.g. {flag} 20/40, or {flag} off"))
}

/// `off` or `RATE[/BURST]`, of a flag (`None`: not given).
pub fn parse_change(flag: &str, text: Option<&str>) -> anyhow::Result<Change> {
    match text {
        None => Ok(None),
        Some(text) => change(text).map_err(|reason| {
            anyhow::anyhow!("{flag} {reason}; give e.g. {flag} 20/40, or {flag} off")
        }),
    }
}

/// `off` or `RATE[/BURST]`.
pub fn change(text: &str) -> Result<Change, String> {
    if text.trim() == "off" {
        return Ok(Some(None));
    }
    rate(text).map(|rate| Some(Some(rate)))
}

/// The limits an attachment runs with.
pub fn read(maps: &Maps) -> anyhow::Result<Limits> {
    Ok(Limits::of(&maps.config()?))
}

/// Puts `limits` in place, live.
pub fn write(maps: &mut Maps, limits: &Limits) -> anyhow::Result<()> {
    let config = maps.config()?;
    maps.set_config(&limits.apply(&config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_or_say_how() {
        assert_eq!(
            parse_rate("--syn-per-source", "20/40").unwrap(),
            Rate {
                per_second: 20,
                burst: 40
            }
        );
        assert_eq!(
            parse_rate("--syn-per-source", "20").unwrap(),
            Rate {
                per_second: 20,
                burst: 20
            }
        );
        for bad in ["0", "20/0", "x", "20/", "-1", "100000001"] {
            assert_eq!(
                parse_rate("--syn-per-source", bad).unwrap_err().to_string(),
                format!(
                    "--syn-per-source {bad:?} is not RATE[/BURST] with whole numbers from 1 to 100000000 (a second, and the burst above it); give e.g. --syn-per-source 20/40, or --syn-per-source off"
                )
            );
        }
        assert_eq!(parse_change("--x", Some("off")).unwrap(), Some(None));
        assert_eq!(parse_change("--x", None).unwrap(), None);
    }

    #[test]
    fn limits_round_trip_through_config() {
        let rate = Rate {
            per_second: 5,
            burst: 7,
        };
        let limits = Limits {
            syn_per_source: Some(rate),
            syn_acks_per_destination: Some(rate),
            ..Limits::default()
        };
        let config = limits.apply(&Config::default());
        assert_eq!(config.limits, LIMIT_SOURCE | LIMIT_DESTINATION);
        assert_eq!(Limits::of(&config), limits);
        let off = limits.changed([Some(None), None, None, Some(None)]);
        assert!(off.is_off());
        assert_eq!(off.apply(&config), Config::default());
        assert_eq!(
            limits.describe(),
            "SYNs per source host 5/s (burst 7), SYN-ACKs per destination network 5/s (burst 7)"
        );
    }
}
