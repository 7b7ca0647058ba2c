//! The namespace's local routing table (`ip route show table local`): which destination
//! addresses the kernel delivers to this host. The kernel writes a `type local` route
//! there for every address of every interface (and `broadcast` / `anycast` routes beside
//! them); AnyIP setups add whole prefixes (`ip route add local 198.18.0.0/24 dev lo`).
//! Routing consults this table first (rule 0), so its longest match decides whether a
//! destination is local. IPv6 link-local addresses are the exception: a frame reaches
//! one only on its own interface (`ip6_route_input` looks link-local destinations up
//! strictly by the input interface, RT6_LOOKUP_F_IFACE), so each interface sees only its
//! own (`HostRoutes::seen_from`).

use std::{collections::BTreeMap, fmt, net::IpAddr};

use anyhow::{Context as _, bail};
use handshake_common::config::{ROUTE_LOCAL, ROUTE_NOT_LOCAL};
use serde_json::Value;

use crate::prefix::Prefix;

/// The routes of the local table as seen by frames arriving on one interface,
/// `ROUTE_LOCAL` or `ROUTE_NOT_LOCAL` by their type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalTable(pub BTreeMap<Prefix, u8>);

/// One route of the table: its prefix, `ROUTE_LOCAL` or `ROUTE_NOT_LOCAL`, its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: Prefix,
    pub route: u8,
    pub dev: Option<String>,
}

/// The whole local table of the calling thread's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostRoutes(pub Vec<Route>);

impl HostRoutes {
    /// The table, both families.
    pub fn read() -> anyhow::Result<Self> {
        let mut routes = Vec::new();
        for family in ["-4", "-6"] {
            let output = std::process::Command::new("ip")
                .args([family, "-json", "route", "show", "table", "local"])
                .output()
                .context("running `ip route` failed: install iproute2 so that handshake can read which addresses are local")?;
            // A namespace without a single address (not even lo up) has no local table.
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() && stderr.contains("FIB table does not exist") {
                continue;
            }
            if !output.status.success() {
                bail!(
                    "`ip {family} route show table local` failed: {}",
                    stderr.trim()
                );
            }
            // IPv6 off (`ipv6.disable=1`): an empty answer, no table.
            if output.stdout.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed: Vec<Value> = serde_json::from_slice(&output.stdout)
                .context("`ip -json route show table local` printed something that is not JSON")?;
            routes.extend(parse(family, &parsed)?);
        }
        Ok(Self(routes))
    }

    /// What frames arriving on `iface` find local: every route, but IPv6 link-local ones
    /// only of `iface` itself (none when no interface is named), and no loopback ones (a
    /// frame from the wire to a loopback address is martian: `ip_route_input_slow`,
    /// `ip6_rcv_core`). A prefix listed twice (several devices) is local if one says so.
    pub fn seen_from(&self, iface: Option<&str>) -> LocalTable {
        let mut table = BTreeMap::new();
        for route in &self.0 {
            let address = route.prefix.address;
            if address.is_loopback() || (is_link_local(address) && route.dev.as_deref() != iface) {
                continue;
            }
            let entry = table.entry(route.prefix).or_insert(route.route);
            *entry = (*entry).max(route.route);
        }
        LocalTable(table)
    }
}

/// fe80::/10.
fn is_link_local(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

impl LocalTable {
    /// What `self` holds that `other` does not, as "+PREFIX" and "-PREFIX" (local routes
    /// only: the others are context for the longest match).
    pub fn difference(&self, other: &Self) -> Vec<String> {
        let local = |table: &Self| -> Vec<Prefix> {
            table
                .0
                .iter()
                .filter(|&(_, &route)| route == ROUTE_LOCAL)
                .map(|(prefix, _)| *prefix)
                .collect()
        };
        let (ours, theirs) = (local(self), local(other));
        let added = ours
            .iter()
            .filter(|p| !theirs.contains(p))
            .map(|p| format!("+{}", Short(p)));
        let removed = theirs
            .iter()
            .filter(|p| !ours.contains(p))
            .map(|p| format!("-{}", Short(p)));
        added.chain(removed).collect()
    }
}

/// A prefix as `ip route` prints it: a host route without its length.
struct Short<'a>(&'a Prefix);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.0.address.is_ipv4() { 32 } else { 128 };
        if self.0.len == host {
            write!(f, "{}", self.0.address)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The routes as `ip -json route show table local` prints them.
fn parse(family: &str, routes: &[Value]) -> anyhow::Result<Vec<Route>> {
    let mut table = Vec::new();
    for route in routes {
        let Some(dst) = route["dst"].as_str() else {
            continue;
        };
        let dst = match dst {
            "default" if family == "-4" => "0.0.0.0/0",
            "default" => "::/0",
            dst => dst,
        };
        let prefix: Prefix = dst
            .parse()
            .map_err(|error| anyhow::anyhow!("reading the local routing table: {error}"))?;
        table.push(Route {
            prefix,
            // `ip` prints no type for unicast routes.
            route: match route["type"].as_str() {
                Some("local") => ROUTE_LOCAL,
                _ => ROUTE_NOT_LOCAL,
            },
            dev: route["dev"].as_str().map(str::to_owned),
        });
    }
    Ok(table)
}

/// Whether `address` is local by `table`'s longest match: what the XDP program decides
/// per SYN, here for tests and for `status`.
pub fn is_local(table: &LocalTable, address: IpAddr) -> bool {
    table
        .0
        .iter()
        .filter(|(prefix, _)| prefix.contains(address))
        .max_by_key(|(prefix, _)| prefix.len)
        .is_some_and(|(_, &route)| route == ROUTE_LOCAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(family: &str, json: &str) -> HostRoutes {
        HostRoutes(parse(family, &serde_json::from_str::<Vec<Value>>(json).unwrap()).unwrap())
    }

    fn table(family: &str, json: &str) -> LocalTable {
        host(family, json).seen_from(Some("eth0"))
    }

    #[test]
    fn the_longest_route_decides() {
        // As Linux 6.1's `ip -4 -json route show table local` prints an address
        // 198.18.0.1/24 and an AnyIP prefix.
        let v4 = table(
            "-4",
            r#"[{"type":"local","dst":"127.0.0.0/8","dev":"lo","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]},
                {"type":"local","dst":"198.18.0.1","dev":"eth0","protocol":"kernel","scope":"host","prefsrc":"198.18.0.1","flags":[]},
                {"type":"broadcast","dst":"198.18.0.255","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"198.18.0.1","flags":[]},
                {"type":"local","dst":"198.19.0.0/24","dev":"lo","scope":"host","flags":[]},
                {"type":"broadcast","dst":"198.19.0.255","dev":"lo","scope":"link","flags":[]}]"#,
        );
        let local = |a: &str| is_local(&v4, a.parse().unwrap());
        assert!(local("198.18.0.1"));
        assert!(!local("198.18.0.2"));
        assert!(!local("198.18.0.255"));
        assert!(local("198.19.0.7"));
        assert!(!local("198.19.0.255"));
        assert!(!local("127.0.0.53"));
    }

    #[test]
    fn ipv6_anycast_and_multicast_routes_are_not_local() {
        let v6 = table(
            "-6",
            r#"[{"type":"anycast","dst":"2001:2::","dev":"eth0","protocol":"kernel","metric":0,"flags":[],"pref":"medium"},
                {"type":"local","dst":"2001:2::1","dev":"eth0","protocol":"kernel","metric":0,"flags":[],"pref":"medium"},
                {"type":"multicast","dst":"ff00::/8","dev":"eth0","protocol":"kernel","metric":256,"flags":[],"pref":"medium"}]"#,
        );
        let local = |a: &str| is_local(&v6, a.parse().unwrap());
        assert!(local("2001:2::1"));
        assert!(!local("2001:2::"));
        assert!(!local("2001:2::2"));
        assert!(!local("ff02::1"));
    }

    #[test]
    fn link_local_addresses_are_local_only_on_their_interface() {
        let v6 = host(
            "-6",
            r#"[{"type":"local","dst":"fe80::1","dev":"eth0","protocol":"kernel","metric":0,"flags":[],"pref":"medium"},
                {"type":"local","dst":"fe80::2","dev":"veth7","protocol":"kernel","metric":0,"flags":[],"pref":"medium"},
                {"type":"local","dst":"2001:2::2","dev":"veth7","protocol":"kernel","metric":0,"flags":[],"pref":"medium"}]"#,
        );
        let from =
            |iface: Option<&str>, a: &str| is_local(&v6.seen_from(iface), a.parse().unwrap());
        assert!(from(Some("eth0"), "fe80::1"));
        assert!(!from(Some("eth0"), "fe80::2"));
        assert!(from(Some("eth0"), "2001:2::2"));
        assert!(from(Some("veth7"), "fe80::2"));
        assert!(!from(None, "fe80::1"));
        assert!(from(None, "2001:2::2"));
    }

    #[test]
    fn differences_name_local_routes_as_ip_prints_them() {
        let before = table(
            "-4",
            r#"[{"type":"local","dst":"198.18.0.1"},{"type":"broadcast","dst":"198.18.0.255"}]"#,
        );
        let after = table(
            "-4",
            r#"[{"type":"local","dst":"198.18.0.9"},{"type":"local","dst":"198.19.0.0/24"},{"type":"broadcast","dst":"198.18.0.255"}]"#,
        );
        assert_eq!(
            after.difference(&before),
            ["+198.18.0.9", "+198.19.0.0/24", "-198.18.0.1"]
        );
        assert!(after.difference(&after).is_empty());
    }
}
