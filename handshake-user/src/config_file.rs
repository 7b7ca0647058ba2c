//! The optional TOML configuration for `attach` and `run`, checked whole before anything
//! is applied; an error names the file, the line and the key.
//!
//! ```toml
//! metrics = "127.0.0.1:9720"     # optional, for `run`
//!
//! [[interface]]
//! name = "eth0"
//! ports = [80, 443]
//! xdp_mode = "auto"              # native | generic | auto (default)
//! mss = 1460                     # optional; default from the MTU
//! timestamps = false             # optional; needs net.ipv4.tcp_timestamps=2
//! allow = ["203.0.113.0/24"]     # optional: sources passed untouched
//! deny = ["2001:db8::/32"]       # optional: sources dropped
//! dry_run = false                # optional: count every verdict, pass every packet
//! syn_per_source = "20/40"       # optional rate limits, RATE[/BURST] a second (or a
//! syn_per_network = 200          #   number): SYNs per source host and network,
//! syn_acks_per_second = 10000    #   SYN-ACKs from the interface and to one
//! syn_acks_per_destination = 100 #   destination network; all off by default
//! ```

use std::{fs, net::SocketAddr, path::Path};

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;
use toml::Spanned;

use crate::{
    loader::Mode,
    ports,
    prefix::Prefix,
    rate_limits::{self, FLAGS, Limits},
    settings::Settings,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    metrics: Option<Spanned<String>>,
    #[serde(default)]
    interface: Vec<Interface>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Interface {
    name: Spanned<String>,
    ports: Vec<Spanned<PortItem>>,
    xdp_mode: Option<Mode>,
    mss: Option<Spanned<u32>>,
    #[serde(default)]
    timestamps: bool,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    dry_run: bool,
    syn_per_source: Option<Spanned<RateItem>>,
    syn_per_network: Option<Spanned<RateItem>>,
    syn_acks_per_second: Option<Spanned<RateItem>>,
    syn_acks_per_destination: Option<Spanned<RateItem>>,
}

/// `20` or `"20/40"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RateItem {
    Number(i64),
    Text(String),
}

/// `80` or `"8000-8010"` (a string also takes a list: `"80,443"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum PortItem {
    Number(i64),
    Text(String),
}

#[derive(Debug)]
pub struct ConfigFile {
    pub interfaces: Vec<Settings>,
    pub metrics: Option<SocketAddr>,
}

pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the config file {} failed", path.display()))?;
    parse(&text).map_err(|error| anyhow!("{}: {error}", path.display()))
}

/// Parses and checks `text`; each interface is also checked against the system (it
/// exists, its MTU fits the MSS, the sysctls allow timestamps).
pub fn parse(text: &str) -> anyhow::Result<ConfigFile> {
    let file: File =
        toml::from_str(text).map_err(|error| anyhow!("{}", error.to_string().trim_end()))?;
    if file.interface.is_empty() {
        bail!("no [[interface]] table; add one with a name and ports");
    }
    let line = |span: std::ops::Range<usize>| text[..span.start].matches('\n').count() + 1;
    let metrics = match &file.metrics {
        Some(address) => Some(address.get_ref().parse::<SocketAddr>().map_err(|_| {
            anyhow!(
                "line {}, key metrics: {:?} is not ADDR:PORT; give e.g. \"127.0.0.1:9720\"",
                line(address.span()),
                address.get_ref()
            )
        })?),
        None => None,
    };
    let mut interfaces: Vec<Settings> = Vec::new();
    for entry in file.interface {
        let name = entry.name.get_ref().clone();
        let at = line(entry.name.span());
        if interfaces.iter().any(|settings| settings.iface == name) {
            bail!(
                "line {at}, key interface.name: interface {name} appears twice; give each interface one table"
            );
        }
        let mut ports: Vec<u16> = Vec::new();
        for item in &entry.ports {
            let added = match item.get_ref() {
                PortItem::Number(port) => ports::check(*port, &ports).map(|port| ports.push(port)),
                PortItem::Text(list) => list
                    .split(',')
                    .try_for_each(|item| ports::parse_item(item, &mut ports)),
            };
            added.map_err(|reason| {
                anyhow!("line {}, key interface.ports: {reason}", line(item.span()))
            })?;
        }
        if ports.is_empty() {
            bail!(
                "line {at}, key interface.ports: interface {name} protects no port; list at least one"
            );
        }
        let prefixes = |key: &str, items: &[Spanned<String>]| -> anyhow::Result<Vec<Prefix>> {
            items
                .iter()
                .map(|item| {
                    item.get_ref().parse::<Prefix>().map_err(|reason| {
                        anyhow!("line {}, key interface.{key}: {reason}", line(item.span()))
                    })
                })
                .collect()
        };
        let items = [
            &entry.syn_per_source,
            &entry.syn_per_network,
            &entry.syn_acks_per_second,
            &entry.syn_acks_per_destination,
        ];
        let mut changes = [None; 4];
        for ((change, flag), item) in changes.iter_mut().zip(FLAGS).zip(items) {
            let Some(item) = item else { continue };
            let key = flag.trim_start_matches("--").replace('-', "_");
            let text = match item.get_ref() {
                RateItem::Number(number) => number.to_string(),
                RateItem::Text(text) => text.clone(),
            };
            *change = rate_limits::change(&text).map_err(|reason| {
                anyhow!(
                    "line {}, key interface.{key}: {reason}; give e.g. {key} = \"20/40\", or \"off\"",
                    line(item.span())
                )
            })?;
        }
        let settings = Settings {
            iface: name.clone(),
            ports,
            mode: entry.xdp_mode.unwrap_or(Mode::Auto),
            mss: entry.mss.as_ref().map(|mss| *mss.get_ref()),
            timestamps: entry.timestamps,
            allow: prefixes("allow", &entry.allow)?,
            deny: prefixes("deny", &entry.deny)?,
            dry_run: entry.dry_run,
            limits: Limits::default().changed(changes),
        };
        settings
            .validate()
            .map_err(|error| anyhow!("line {at}, interface {name}: {error:#}"))?;
        interfaces.push(settings);
    }
    Ok(ConfigFile {
        interfaces,
        metrics,
    })
}

/// Only the interface names of the file at `path`, unchecked against the system: what
/// `detach --config` needs when an interface is gone or the file was edited since attach.
pub fn interface_names(path: &Path) -> anyhow::Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Names {
        #[serde(default)]
        interface: Vec<Named>,
    }
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the config file {} failed", path.display()))?;
    let names: Names = toml::from_str(&text)
        .map_err(|error| anyhow!("{}: {}", path.display(), error.to_string().trim_end()))?;
    if names.interface.is_empty() {
        bail!(
            "{}: no [[interface]] table; add one with a name and ports",
            path.display()
        );
    }
    Ok(names
        .interface
        .into_iter()
        .map(|named| named.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn errors_name_line_and_key() {
        let error = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            error("[[interface]]\nname = \"lo\"\nports = [80, 0]\n"),
            "line 3, key interface.ports: port 0 is out of range; TCP ports are 1 to 65535"
        );
        assert_eq!(
            error("[[interface]]\nname = \"lo\"\nports = [80, 80]\n"),
            "line 3, key interface.ports: port 80 appears twice; list each port once"
        );
        assert_eq!(
            error("metrics = \"127.0.0.1:9720\"\n"),
            "no [[interface]] table; add one with a name and ports"
        );
        let unknown = error("[[interface]]\nname = \"lo\"\nprots = [80]\n");
        assert!(
            unknown.contains("line 3") && unknown.contains("unknown field `prots`"),
            "{unknown}"
        );
        let mode = error("[[interface]]\nname = \"lo\"\nports = [80]\nxdp_mode = \"fast\"\n");
        assert!(
            mode.contains("line 4") && mode.contains("unknown variant `fast`"),
            "{mode}"
        );
        assert_eq!(
            error("metrics = \"9720\"\n[[interface]]\nname = \"lo\"\nports = [80]\n"),
            "line 1, key metrics: \"9720\" is not ADDR:PORT; give e.g. \"127.0.0.1:9720\""
        );
        assert_eq!(
            error("[[interface]]\nname = \"lo\"\nports = [80, \"79-81\"]\n"),
            "line 3, key interface.ports: port 80 appears twice; list each port once"
        );
        assert_eq!(
            error("[[interface]]\nname = \"../x\"\nports = [80]\n"),
            "line 2, interface ../x: \"../x\" is not an interface name (1 to 15 characters, no '/', ':' or spaces); `ip link` lists interfaces"
        );
        assert_eq!(
            error(
                "[[interface]]\nname = \"lo\"\nports = [80]\nallow = [\"198.18.0.0/24\",\n  \"198.18.1.1/24\"]\n"
            ),
            "line 5, key interface.allow: 198.18.1.1/24 has host bits set past /24; give the network, 198.18.1.0/24, or the host, 198.18.1.1/32"
        );
        assert_eq!(
            error("[[interface]]\nname = \"lo\"\nports = [80]\ndeny = [\"foo\"]\n"),
            "line 4, key interface.deny: \"foo\" is not an IPv4 or IPv6 prefix; give ADDRESS/LENGTH like 203.0.113.0/24 or 2001:db8::/32, or one address"
        );
        assert_eq!(
            error("[[interface]]\nname = \"lo\"\nports = [80]\nsyn_per_source = \"20/0\"\n"),
            "line 4, key interface.syn_per_source: \"20/0\" is not RATE[/BURST] with whole numbers from 1 to 100000000 (a second, and the burst above it); give e.g. syn_per_source = \"20/40\", or \"off\""
        );
        assert_eq!(
            error("[[interface]]\nname = \"nosuch0\"\nports = [80]\n"),
            "line 2, interface nosuch0: interface nosuch0 not found; `ip link` lists interfaces"
        );
    }
}
