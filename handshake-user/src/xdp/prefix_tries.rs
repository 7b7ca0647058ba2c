//! A pair of LPM tries, IPv4 and IPv6, keyed by prefix with a byte for each: what the
//! source lists (`source_lists.rs`: the prefix length) and the local routes
//! (`local_routes.rs`: the route's type) are kept in. IPv6 keys are the address's bytes in
//! order, which is how the program reads them (as four words in packet order).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::Context as _;
use aya::maps::{LpmTrie, MapData, lpm_trie::Key};

use crate::prefix::Prefix;

pub struct PrefixTries {
    pub v4: LpmTrie<MapData, [u8; 4], u8>,
    pub v6: LpmTrie<MapData, [u8; 16], u8>,
}

impl PrefixTries {
    /// Every entry, IPv4 first, each family in address order.
    pub fn entries(&self) -> anyhow::Result<BTreeMap<Prefix, u8>> {
        let mut entries = BTreeMap::new();
        let prefix = |address: IpAddr, len: u32| Prefix {
            address,
            len: len as u8,
        };
        for entry in self.v4.iter() {
            let (key, value) = entry.context("reading an IPv4 trie failed")?;
            entries.insert(
                prefix(Ipv4Addr::from(key.data()).into(), key.prefix_len()),
                value,
            );
        }
        for entry in self.v6.iter() {
            let (key, value) = entry.context("reading an IPv6 trie failed")?;
            entries.insert(
                prefix(Ipv6Addr::from(key.data()).into(), key.prefix_len()),
                value,
            );
        }
        Ok(entries)
    }

    pub fn insert(&mut self, prefix: &Prefix, value: u8) -> anyhow::Result<()> {
        let len = u32::from(prefix.len);
        match prefix.address {
            IpAddr::V4(v4) => self.v4.insert(&Key::new(len, v4.octets()), value, 0),
            IpAddr::V6(v6) => self.v6.insert(&Key::new(len, v6.octets()), value, 0),
        }
        .with_context(|| format!("writing {prefix} failed"))
    }

    pub fn remove(&mut self, prefix: &Prefix) -> anyhow::Result<()> {
        let len = u32::from(prefix.len);
        match prefix.address {
            IpAddr::V4(v4) => self.v4.remove(&Key::new(len, v4.octets())),
            IpAddr::V6(v6) => self.v6.remove(&Key::new(len, v6.octets())),
        }
        .with_context(|| format!("removing {prefix} failed"))
    }

    /// Whether each family's trie is empty.
    pub fn empty(&self) -> (bool, bool) {
        (
            self.v4.keys().next().is_none(),
            self.v6.keys().next().is_none(),
        )
    }
}
