//! The program's copy of the namespace's local routing table: `LOCAL_V4` and `LOCAL_V6`,
//! LPM tries keyed by destination prefix, valued `ROUTE_LOCAL` or `ROUTE_NOT_LOCAL` (see
//! handshake-ebpf/src/this_host.rs), and `LOCAL_HOSTS`, the same as a list of addresses
//! for the usual table of a few, which the program checks without a helper call. Filled when the program is loaded, kept current by
//! `handshake run`; `status` says when the host's table has moved on since.
//!
//! A replacement writes every route before it removes the ones gone, so an address that
//! stays local is never missing in between (a SYN to it would be passed, not broken).

use std::net::IpAddr;

use anyhow::{Context as _, bail};
use aya::maps::{Array, MapData};
use handshake_common::config::{ASK_TRIE, LOCAL_HOSTS_LEN, LOCAL_ROUTES, LocalHosts, ROUTE_LOCAL};

use crate::{host::local_table::LocalTable, prefix::Prefix, prefix_tries::PrefixTries};

pub struct LocalRoutes {
    /// Each route's value `ROUTE_LOCAL` or `ROUTE_NOT_LOCAL`.
    pub tries: PrefixTries,
    /// The same as a few addresses, when it is that simple (`hosts`).
    pub hosts: Array<MapData, LocalHosts>,
}

impl LocalRoutes {
    /// What the tries hold now.
    pub fn table(&self) -> anyhow::Result<LocalTable> {
        Ok(LocalTable(self.tries.entries()?))
    }

    /// Makes the tries hold exactly `table`.
    pub fn replace(&mut self, table: &LocalTable) -> anyhow::Result<()> {
        let per_family = |v4: bool| table.0.keys().filter(|p| p.address.is_ipv4() == v4).count();
        if let Some(count) = [per_family(true), per_family(false)]
            .into_iter()
            .find(|&count| count > LOCAL_ROUTES as usize)
        {
            bail!(
                "the local routing table holds {count} routes of one family, more than the {LOCAL_ROUTES} handshake can follow; use AnyIP prefixes (`ip route add local PREFIX dev lo`) instead of single addresses"
            );
        }
        let old = self.table()?;
        for (prefix, &route) in &table.0 {
            if old.0.get(prefix) != Some(&route) {
                self.tries.insert(prefix, route)?;
            }
        }
        for prefix in old.0.keys().filter(|prefix| !table.0.contains_key(prefix)) {
            self.tries.remove(prefix)?;
        }
        // After the tries: the program asks them whenever `LOCAL_HOSTS` says so.
        self.hosts
            .set(0, hosts(table), 0)
            .context("writing LOCAL_HOSTS failed")
    }
}

/// `table` as `LocalHosts`: per family, its local routes when they are at most
/// `LOCAL_HOSTS_LEN` host routes (loopback ones aside), else `ASK_TRIE`.
pub fn hosts(table: &LocalTable) -> LocalHosts {
    let local: Vec<&Prefix> = table
        .0
        .iter()
        .filter(|&(prefix, &route)| route == ROUTE_LOCAL && !prefix.address.is_loopback())
        .map(|(prefix, _)| prefix)
        .collect();
    let family = |v4: bool| -> Option<Vec<IpAddr>> {
        let routes: Vec<&&Prefix> = local.iter().filter(|p| p.address.is_ipv4() == v4).collect();
        let host = if v4 { 32 } else { 128 };
        (routes.len() <= LOCAL_HOSTS_LEN && routes.iter().all(|p| p.len == host))
            .then(|| routes.iter().map(|p| p.address).collect())
    };
    let mut hosts = LocalHosts::default();
    match family(true) {
        Some(addresses) => {
            for (slot, address) in hosts.v4.iter_mut().zip(&addresses) {
                if let IpAddr::V4(v4) = address {
                    *slot = v4.octets();
                }
            }
            hosts.v4_len = addresses.len() as u8;
        }
        None => hosts.v4_len = ASK_TRIE,
    }
    match family(false) {
        Some(addresses) => {
            for (slot, address) in hosts.v6.iter_mut().zip(&addresses) {
                if let IpAddr::V6(v6) = address {
                    let o = v6.octets();
                    *slot = std::array::from_fn(|i| {
                        u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
                    });
                }
            }
            hosts.v6_len = addresses.len() as u8;
        }
        None => hosts.v6_len = ASK_TRIE,
    }
    hosts
}

#[cfg(test)]
mod tests {
    use handshake_common::config::ROUTE_NOT_LOCAL;

    use super::*;

    fn table(routes: &[(&str, u8)]) -> LocalTable {
        LocalTable(
            routes
                .iter()
                .map(|(p, r)| (p.parse().unwrap(), *r))
                .collect(),
        )
    }

    #[test]
    fn a_few_host_routes_are_checked_without_the_trie() {
        let hosts = hosts(&table(&[
            ("127.0.0.0/8", ROUTE_LOCAL),
            ("198.18.0.1", ROUTE_LOCAL),
            ("198.18.0.255", ROUTE_NOT_LOCAL),
            ("::1", ROUTE_LOCAL),
            ("2001:2::1", ROUTE_LOCAL),
            ("fe80::1", ROUTE_LOCAL),
        ]));
        assert_eq!((hosts.v4_len, hosts.v6_len), (1, 2));
        assert_eq!(hosts.v4[0], [198, 18, 0, 1]);
        assert_eq!(hosts.v6[0][0], u32::from_ne_bytes([0x20, 0x01, 0, 2]));
        assert_eq!(hosts.v6[1][0], u32::from_ne_bytes([0xfe, 0x80, 0, 0]));
        assert_eq!(hosts.v6[1][3], u32::from_ne_bytes([0, 0, 0, 1]));
    }

    #[test]
    fn prefixes_and_many_addresses_ask_the_trie() {
        let anyip = hosts(&table(&[
            ("198.18.0.1", ROUTE_LOCAL),
            ("198.19.0.0/24", ROUTE_LOCAL),
        ]));
        assert_eq!((anyip.v4_len, anyip.v6_len), (ASK_TRIE, 0));
        let many: Vec<(String, u8)> = (1..=5)
            .map(|i| (format!("2001:2::{i}"), ROUTE_LOCAL))
            .collect();
        let many: Vec<(&str, u8)> = many.iter().map(|(p, r)| (p.as_str(), *r)).collect();
        assert_eq!(hosts(&table(&many)).v6_len, ASK_TRIE);
    }
}
