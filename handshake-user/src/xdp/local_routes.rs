//! The program's copy of the namespace's local routing table: `LOCAL_V4` and `LOCAL_V6`,
//! LPM tries keyed by destination prefix, valued `ROUTE_LOCAL` or `ROUTE_NOT_LOCAL` (see
//! handshake-ebpf/src/this_host.rs). Filled when the program is loaded, kept current by
//! `handshake run`; `status` says when the host's table has moved on since.
//!
//! A replacement writes every route before it removes the ones gone, so an address that
//! stays local is never missing in between (a SYN to it would be passed, not broken).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, bail};
use aya::maps::{LpmTrie, MapData, lpm_trie::Key};
use handshake_common::config::LOCAL_ROUTES;

use crate::{host::local_table::LocalTable, prefix::Prefix};

pub struct LocalRoutes {
    pub v4: LpmTrie<MapData, [u8; 4], u8>,
    pub v6: LpmTrie<MapData, [u8; 16], u8>,
}

impl LocalRoutes {
    /// What the tries hold now.
    pub fn table(&self) -> anyhow::Result<LocalTable> {
        let mut table = LocalTable::default();
        for entry in self.v4.iter() {
            let (key, route) = entry.context("reading LOCAL_V4 failed")?;
            let address = IpAddr::V4(Ipv4Addr::from(key.data()));
            table.0.insert(prefix(address, key.prefix_len()), route);
        }
        for entry in self.v6.iter() {
            let (key, route) = entry.context("reading LOCAL_V6 failed")?;
            let address = IpAddr::V6(Ipv6Addr::from(key.data()));
            table.0.insert(prefix(address, key.prefix_len()), route);
        }
        Ok(table)
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
                self.insert(prefix, route)?;
            }
        }
        for prefix in old.0.keys().filter(|prefix| !table.0.contains_key(prefix)) {
            self.remove(prefix)?;
        }
        Ok(())
    }

    fn insert(&mut self, prefix: &Prefix, route: u8) -> anyhow::Result<()> {
        let len = u32::from(prefix.len);
        match prefix.address {
            IpAddr::V4(v4) => self.v4.insert(&Key::new(len, v4.octets()), route, 0),
            IpAddr::V6(v6) => self.v6.insert(&Key::new(len, v6.octets()), route, 0),
        }
        .with_context(|| format!("writing the local route {prefix} failed"))
    }

    fn remove(&mut self, prefix: &Prefix) -> anyhow::Result<()> {
        let len = u32::from(prefix.len);
        match prefix.address {
            IpAddr::V4(v4) => self.v4.remove(&Key::new(len, v4.octets())),
            IpAddr::V6(v6) => self.v6.remove(&Key::new(len, v6.octets())),
        }
        .with_context(|| format!("removing the local route {prefix} failed"))
    }
}

fn prefix(address: IpAddr, len: u32) -> Prefix {
    Prefix {
        address,
        len: len as u8,
    }
}
