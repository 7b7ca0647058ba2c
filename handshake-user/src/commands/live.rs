//! Commands that change an attached interface live, without re-attaching and without
//! touching its counters: `allow` and `deny` (the source lists) and `dry-run`. Each takes
//! the namespace folder's lock, as `ports` does, so parallel calls take turns.

use std::path::PathBuf;

use anyhow::bail;

use crate::{
    pins::PinRoot,
    prefix::{self, Prefix},
    source_lists::{self, List},
    state,
};

/// What to do to a list.
pub enum Change {
    Add(Vec<Prefix>),
    Remove(Vec<Prefix>),
    Show,
}

/// The prefixes of a command line: its arguments and those of `--file` (one per line),
/// every one checked before any is applied.
pub fn prefixes(args: &[String], file: Option<&PathBuf>) -> anyhow::Result<Vec<Prefix>> {
    let mut prefixes = prefix::parse_all(args.iter().map(String::as_str))?;
    if let Some(path) = file {
        prefixes.extend(prefix::parse_file(path)?);
    }
    if prefixes.is_empty() {
        bail!("no prefix given; list them (e.g. 203.0.113.0/24 2001:db8::/32) or give --file FILE");
    }
    Ok(prefixes)
}

/// `handshake allow|deny add|remove|list --iface IF`: what the list holds afterwards.
pub fn change_list(
    root: &PinRoot,
    iface: &str,
    list: List,
    change: Change,
) -> anyhow::Result<String> {
    let _lock = root.lock()?;
    let mut pinned = state::protected(root, iface)?;
    let maps = &mut pinned.maps;
    // The refusals source_lists makes too, here with the commands for this interface.
    if let Change::Add(prefixes) = &change {
        let other = maps.sources.tries(list.other()).prefixes()?;
        if let Some(both) = prefixes.iter().find(|prefix| other.contains(prefix)) {
            bail!(
                "{both} is on the {} list of {iface}; one prefix cannot be on both: {} first; nothing changed",
                list.other(),
                root.command(&format!("{} remove --iface {iface} {both}", list.other()))
            );
        }
    }
    if let Change::Remove(prefixes) = &change {
        let current = maps.sources.tries(list).prefixes()?;
        if let Some(missing) = prefixes.iter().find(|prefix| !current.contains(prefix)) {
            bail!(
                "{missing} is not on the {list} list of {iface}; nothing removed; {} shows it",
                root.command(&format!("{list} list --iface {iface}"))
            );
        }
    }
    let done = match &change {
        Change::Add(prefixes) => {
            let added = source_lists::add(maps, list, prefixes)?;
            format!("added {added}, ")
        }
        Change::Remove(prefixes) => {
            source_lists::remove(maps, list, prefixes)?;
            let unique: std::collections::BTreeSet<_> = prefixes.iter().collect();
            format!("removed {}, ", unique.len())
        }
        Change::Show => String::new(),
    };
    let now = maps.sources.tries(list).prefixes()?;
    if let Change::Show = change {
        if now.is_empty() {
            return Ok(format!("{iface}: the {list} list is empty"));
        }
        let lines: Vec<String> = now.iter().map(Prefix::to_string).collect();
        return Ok(lines.join("\n"));
    }
    Ok(format!(
        "{iface}: {list} list: {done}now {}",
        source_lists::describe(&now)
    ))
}

/// `handshake dry-run --iface IF on|off`.
pub fn dry_run(root: &PinRoot, iface: &str, on: bool) -> anyhow::Result<String> {
    let _lock = root.lock()?;
    let mut pinned = state::protected(root, iface)?;
    let mut config = pinned.maps.config()?;
    config.dry_run = u8::from(on);
    pinned.maps.set_config(&config)?;
    Ok(if on {
        format!(
            "{iface}: DRY RUN: every verdict is counted, every packet passes to the kernel; {} enforces",
            root.command(&format!("dry-run --iface {iface} off"))
        )
    } else {
        format!(
            "{iface}: enforcing: SYNs are answered at XDP, forged ACKs and denied sources dropped"
        )
    })
}
