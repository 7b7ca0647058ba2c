//! The allow and deny lists of one attachment: an LPM trie per list and family
//! (`ALLOW_V4`, `ALLOW_V6`, `DENY_V4`, `DENY_V6`, see handshake-ebpf/src/sources.rs), each
//! entry's value its prefix length, and a bit per trie in `Config::lists` that tells the
//! program the trie is worth a lookup.
//!
//! Changes are live and all-or-nothing: every prefix is checked before the first is
//! written, and a kernel error part way takes back what this call wrote. A prefix enters
//! its trie before the trie's bit is set, and the bit is cleared before the trie's last
//! prefix leaves, so the program never skips a listed source.

use std::{collections::BTreeSet, fmt};

use anyhow::bail;
use handshake_common::config::{
    LIST_ALLOW_V4, LIST_ALLOW_V6, LIST_DENY_V4, LIST_DENY_V6, LIST_ENTRIES,
};

use crate::{maps::Maps, prefix::Prefix, prefix_tries::PrefixTries};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum List {
    Allow,
    Deny,
}

impl List {
    pub fn name(self) -> &'static str {
        match self {
            List::Allow => "allow",
            List::Deny => "deny",
        }
    }

    pub fn other(self) -> List {
        match self {
            List::Allow => List::Deny,
            List::Deny => List::Allow,
        }
    }

    fn bits(self) -> (u8, u8) {
        match self {
            List::Allow => (LIST_ALLOW_V4, LIST_ALLOW_V6),
            List::Deny => (LIST_DENY_V4, LIST_DENY_V6),
        }
    }
}

impl fmt::Display for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One list's two tries, each entry's value its prefix length.
pub type Tries = PrefixTries;

impl Tries {
    /// Every prefix, IPv4 first, each family in address order.
    pub fn prefixes(&self) -> anyhow::Result<BTreeSet<Prefix>> {
        Ok(self.entries()?.into_keys().collect())
    }

    fn add(&mut self, prefix: &Prefix) -> anyhow::Result<()> {
        self.insert(prefix, prefix.len)
    }
}

/// Both lists.
pub struct SourceLists {
    pub allow: Tries,
    pub deny: Tries,
}

impl SourceLists {
    pub fn tries(&self, list: List) -> &Tries {
        match list {
            List::Allow => &self.allow,
            List::Deny => &self.deny,
        }
    }

    fn tries_mut(&mut self, list: List) -> &mut Tries {
        match list {
            List::Allow => &mut self.allow,
            List::Deny => &mut self.deny,
        }
    }
}

/// How many prefixes of each family.
fn counts(prefixes: &BTreeSet<Prefix>) -> (usize, usize) {
    let v4 = prefixes.iter().filter(|p| p.address.is_ipv4()).count();
    (v4, prefixes.len() - v4)
}

/// Adds `prefixes` to `list`; those already on it stay as they are. Returns how many
/// were new. Refuses, changing nothing, a prefix that is on the other list or a list that
/// would pass `LIST_ENTRIES` prefixes of a family.
pub fn add(maps: &mut Maps, list: List, prefixes: &[Prefix]) -> anyhow::Result<usize> {
    let current = maps.sources.tries(list).prefixes()?;
    let other = maps.sources.tries(list.other()).prefixes()?;
    if let Some(both) = prefixes.iter().find(|prefix| other.contains(prefix)) {
        bail!(
            "{both} is on the {} list; one prefix cannot be on both: remove it there first (`handshake {} remove`)",
            list.other(),
            list.other()
        );
    }
    let new: BTreeSet<Prefix> = prefixes
        .iter()
        .filter(|prefix| !current.contains(prefix))
        .copied()
        .collect();
    let (now_v4, now_v6) = counts(&current);
    let (new_v4, new_v6) = counts(&new);
    for (family, now, added) in [("IPv4", now_v4, new_v4), ("IPv6", now_v6, new_v6)] {
        if now + added > LIST_ENTRIES as usize {
            bail!(
                "adding {added} {family} prefixes to the {now} on the {list} list would make {}, over the limit of {LIST_ENTRIES} per family; remove some first, or list wider prefixes",
                now + added
            );
        }
    }
    let tries = maps.sources.tries_mut(list);
    let mut written = Vec::new();
    for prefix in &new {
        if let Err(error) = tries.add(prefix) {
            for done in &written {
                let _ = tries.remove(done);
            }
            return Err(error);
        }
        written.push(*prefix);
    }
    update_bits(maps)?;
    Ok(new.len())
}

/// Removes `prefixes` from `list`; refuses, changing nothing, when one is not on it.
pub fn remove(maps: &mut Maps, list: List, prefixes: &[Prefix]) -> anyhow::Result<()> {
    let current = maps.sources.tries(list).prefixes()?;
    if let Some(missing) = prefixes.iter().find(|prefix| !current.contains(prefix)) {
        bail!("{missing} is not on the {list} list; `handshake {list} list --iface IF` shows it");
    }
    let unique: BTreeSet<Prefix> = prefixes.iter().copied().collect();
    // Clear a family's bit first when its trie is about to become empty.
    let (v4_left, v6_left) = {
        let (v4, v6) = counts(&current);
        let (gone_v4, gone_v6) = counts(&unique);
        (v4 - gone_v4, v6 - gone_v6)
    };
    let (bit_v4, bit_v6) = list.bits();
    let mut clear = 0;
    if v4_left == 0 {
        clear |= bit_v4;
    }
    if v6_left == 0 {
        clear |= bit_v6;
    }
    if clear != 0 {
        let mut config = maps.config()?;
        config.lists &= !clear;
        maps.set_config(&config)?;
    }
    let tries = maps.sources.tries_mut(list);
    for prefix in &unique {
        tries.remove(prefix)?;
    }
    update_bits(maps)
}

/// Sets `Config::lists` from what the tries hold now.
pub fn update_bits(maps: &mut Maps) -> anyhow::Result<()> {
    let mut lists = 0;
    for list in [List::Allow, List::Deny] {
        let (bit_v4, bit_v6) = list.bits();
        let (v4_empty, v6_empty) = maps.sources.tries(list).empty();
        if !v4_empty {
            lists |= bit_v4;
        }
        if !v6_empty {
            lists |= bit_v6;
        }
    }
    let mut config = maps.config()?;
    if config.lists != lists {
        config.lists = lists;
        maps.set_config(&config)?;
    }
    Ok(())
}

/// "2 prefixes (1 IPv4, 1 IPv6)".
pub fn describe(prefixes: &BTreeSet<Prefix>) -> String {
    let (v4, v6) = counts(prefixes);
    let noun = if prefixes.len() == 1 {
        "prefix"
    } else {
        "prefixes"
    };
    format!("{} {noun} ({v4} IPv4, {v6} IPv6)", prefixes.len())
}
