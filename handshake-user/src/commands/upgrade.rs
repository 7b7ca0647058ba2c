//! `handshake attach` over an interface that another build of handshake protects (a new
//! package, a rebuilt binary): the upgrade in place. This build's program replaces the
//! running one on the same pinned XDP link (`bpf_link_update`: every frame meets the one
//! or the other, never neither) and takes over its maps where their layout is this
//! build's: the protected ports with their counters, the interface's counters, the allow
//! and deny lists, the local routes. What the operator changed while it ran (`ports add`,
//! `allow add`, `dry-run on`) is kept; a map whose layout changed starts afresh from the
//! command's settings, and the report says so.
//!
//! The new program and its own maps are pinned beside the running ones (`NAME_next`) and
//! renamed over them once the link runs it: until the link is updated nothing the running
//! program uses has changed, and a failure takes the new pins back.

use std::{fs, path::Path};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Map, MapData, MapInfo},
};
use handshake_common::config::Config;

use crate::{
    build_info,
    loader::{Handshake, NEXT},
    maps::{self, ALLOW_V4, ALLOW_V6, DENY_V4, DENY_V6, PORT_COUNTERS, PORTS},
    pins::{self, PinRoot},
    ports,
    rate_limits::Limits,
    settings::Settings,
    source_lists::{self, List},
    state::Pinned,
};

/// Whether the pinned program is another build's (its kernel tag differs from the one this
/// binary's program gets on this kernel): then `attach` upgrades instead of refusing.
pub fn is_other_build(pinned: &Pinned) -> anyhow::Result<bool> {
    let own = build_info::own_tag()?;
    Ok(build_info::tag_of(pinned.program_id).is_some_and(|running| running != own))
}

/// Replaces the program `pinned` runs on `settings.iface` with this build's; returns what
/// it did, for the command's output.
pub fn upgrade(
    root: &PinRoot,
    settings: &Settings,
    config: &Config,
    pinned: &Pinned,
    object: &[u8],
) -> anyhow::Result<String> {
    let iface = &settings.iface;
    let dir = root.iface_dir(iface);
    let inherited = inheritable(&dir, object)?;
    let running = pinned.maps.config()?;
    let replaced = (|| {
        let mut handshake = Handshake::load_inheriting(object, &dir, &inherited)?;
        let keeps = |names: &[&str]| names.iter().all(|name| inherited.contains(name));
        // The link keeps its mode; what can change while it runs stays as it is.
        let live = Config {
            mode: running.mode,
            dry_run: running.dry_run,
            ..*config
        };
        // Rate limits set live (`handshake limit`) stay, unless the command gives its own.
        let live = match settings.limits.is_off() {
            true => Limits::of(&running).apply(&live),
            false => live,
        };
        handshake.set_config(&live)?;
        if !keeps(&[PORTS, PORT_COUNTERS]) {
            handshake.set_ports(&settings.ports)?;
        }
        if keeps(&[ALLOW_V4, ALLOW_V6, DENY_V4, DENY_V6]) {
            source_lists::update_bits(&mut handshake.maps)?;
        } else {
            source_lists::add(&mut handshake.maps, List::Allow, &settings.allow)?;
            source_lists::add(&mut handshake.maps, List::Deny, &settings.deny)?;
        }
        handshake.see_local_routes_from(iface)?;
        handshake.replace_on_link(&dir.join(pins::LINK))?;
        Ok::<_, anyhow::Error>(handshake)
    })();
    let handshake = match replaced {
        Ok(handshake) => handshake,
        Err(error) => {
            remove_next_pins(&dir);
            return Err(error.context(format!(
                "upgrading the program on {iface} failed; nothing changed: the running build still protects it"
            )));
        }
    };
    for name in [pins::PROGRAM].into_iter().chain(maps::NAMES) {
        let next = dir.join(format!("{name}{NEXT}"));
        if next.exists() {
            fs::rename(&next, dir.join(name))
                .with_context(|| format!("renaming {} failed", next.display()))?;
        }
    }
    let kept_ports = handshake.maps.ports.list()?.into_keys().collect::<Vec<_>>();
    let mut said = format!(
        "handshake replaced the program on {iface} (id {}, another build) with this build's (id {}) on the same XDP link; protects TCP ports {}",
        pinned.program_id,
        handshake.program_id()?,
        ports::join(&kept_ports)
    );
    let fresh: Vec<&str> = maps::NAMES
        .into_iter()
        .filter(|name| *name != maps::CONFIG && !inherited.contains(name))
        .collect();
    if fresh.is_empty() {
        said.push_str("; ports, counters and lists carried over");
    } else {
        said.push_str(&format!(
            "; started afresh (their layout changed): {}",
            fresh.join(", ")
        ));
    }
    if kept_ports != settings.ports && inherited.contains(&PORTS) {
        said.push_str(&format!(
            "; the ports it protected are kept, not the {} asked for: change them with {}",
            ports::join(&settings.ports),
            root.command(&format!("ports add|remove --iface {iface}"))
        ));
    }
    Ok(said)
}

/// The pinned maps in `dir` whose layout (type, key and value size, entries, flags) is the
/// one `object` declares, so its program can use them as they are. CONFIG never: the new
/// program gets its own, written before the switch, while the running one reads the old.
fn inheritable(dir: &Path, object: &[u8]) -> anyhow::Result<Vec<&'static str>> {
    // Loading without the program creates the object's maps and verifies nothing.
    let fresh = Ebpf::load(object).context("reading the embedded XDP object's maps failed")?;
    let layout = |info: &MapInfo| {
        (
            info.map_type().ok(),
            info.key_size(),
            info.value_size(),
            info.max_entries(),
            info.map_flags(),
        )
    };
    let mut inherited = Vec::new();
    for name in maps::NAMES.into_iter().filter(|name| *name != maps::CONFIG) {
        let ours = fresh
            .map(name)
            .and_then(map_data)
            .and_then(|map| map.info().ok());
        let running = MapData::from_pin(dir.join(name))
            .ok()
            .and_then(|map| map.info().ok());
        if let (Some(ours), Some(running)) = (ours, running)
            && layout(&ours) == layout(&running)
        {
            inherited.push(name);
        }
    }
    Ok(inherited)
}

/// The kinds of map the program has.
fn map_data(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(data) | Map::PerCpuArray(data) | Map::LpmTrie(data) | Map::RingBuf(data) => {
            Some(data)
        }
        _ => None,
    }
}

/// Removes the `_next` pins a failed upgrade left; the running ones stay.
fn remove_next_pins(dir: &Path) {
    for name in [pins::PROGRAM].into_iter().chain(maps::NAMES) {
        let _ = fs::remove_file(dir.join(format!("{name}{NEXT}")));
    }
}
