//! What the kernel says about a pinned attachment, never what the folder names suggest:
//! an interface deleted and created again under the same name, or an XDP link detached by
//! `bpftool link detach`, leaves the pins in place but protects nothing. Every command
//! that reports or changes an attachment checks it here first.

use std::{path::Path, time::SystemTime};

use anyhow::Context as _;
use aya::programs::{
    ProgramInfo,
    links::{FdLink, PinnedLink},
};

use crate::{
    interface,
    loader::Mode,
    maps::Maps,
    pins::{self, PinRoot},
    ports,
};

/// An attachment's pins, opened.
pub struct Pinned {
    pub iface: String,
    pub program_id: u32,
    pub loaded_at: Option<SystemTime>,
    pub maps: Maps,
    link_program_id: u32,
}

impl Pinned {
    /// Opens the pins in `dir`; an error means pins are missing (an attach that did not
    /// finish) or unreadable.
    pub fn open(dir: &Path, iface: &str) -> anyhow::Result<Self> {
        let link = PinnedLink::from_pin(dir.join(pins::LINK))
            .map(FdLink::from)
            .context("the XDP link pin is missing")?;
        let link_program_id = link
            .info()
            .context("reading the pinned XDP link failed")?
            .program_id();
        let program =
            ProgramInfo::from_pin(dir.join(pins::PROGRAM)).context("the program pin is missing")?;
        Ok(Self {
            iface: iface.to_owned(),
            program_id: program.id(),
            loaded_at: program.loaded_at(),
            maps: Maps::from_pins(dir)?,
            link_program_id,
        })
    }

    /// `Ok` when the interface of this name in this namespace runs the pinned program
    /// through the pinned link; otherwise why protection is gone and what to do.
    pub fn check(&self) -> Result<(), String> {
        let iface = &self.iface;
        let again = format!(
            "run `handshake attach --iface {iface} --ports {}` again (it replaces these pins), or `handshake detach --iface {iface}` to remove them",
            self.ports_text()
        );
        if interface::index(iface).is_err() {
            return Err(format!(
                "{iface} is gone from this network namespace: protection is gone; when it is back, {again}"
            ));
        }
        match interface::xdp_program(iface) {
            Some(running)
                if running.id == self.program_id && running.id == self.link_program_id =>
            {
                Ok(())
            }
            Some(running) => Err(format!(
                "{iface} runs another XDP program (id {}, name {}), not handshake's (id {}): protection is gone; remove that program, then {again}",
                running.id, running.name, self.program_id
            )),
            None => Err(format!(
                "{iface} was recreated or its XDP link was detached (it runs no XDP program): protection is gone; {again}"
            )),
        }
    }

    pub fn mode(&self) -> &'static str {
        self.maps
            .config()
            .map_or("unknown", |config| Mode::from_config_byte(config.mode))
    }

    pub fn ports(&self) -> Vec<u16> {
        self.maps
            .ports
            .list()
            .map(|ports| ports.into_keys().collect())
            .unwrap_or_default()
    }

    fn ports_text(&self) -> String {
        ports::join(&self.ports())
    }
}

/// The attachment of `iface` in this namespace, checked against the kernel: the error says
/// what is wrong (not attached, stale, recreated) and what to do.
pub fn protected(root: &PinRoot, iface: &str) -> anyhow::Result<Pinned> {
    interface::check_name(iface)?;
    if !root.has(iface)? {
        if let Some(running) = run_program(iface) {
            anyhow::bail!(
                "{iface} is protected by `handshake run` (program id {}), which prints its counters itself and serves them with --metrics; this command works on what `handshake attach` pinned",
                running.id
            );
        }
        anyhow::bail!(
            "handshake is not attached to {iface} (no {}); `handshake status` lists what it protects",
            root.iface_dir(iface).display()
        );
    }
    let pinned = Pinned::open(&root.iface_dir(iface), iface).map_err(|error| {
        anyhow::anyhow!(
            "{} holds stale pins from an attach that did not finish ({error:#}); `handshake detach --iface {iface}` removes them",
            root.iface_dir(iface).display()
        )
    })?;
    pinned.check().map_err(anyhow::Error::msg)?;
    Ok(pinned)
}

/// The handshake program on `iface` when it is not one pinned here: `handshake run`'s.
pub fn run_program(iface: &str) -> Option<interface::XdpProgram> {
    run_programs(&[])
        .into_iter()
        .find(|program| program.iface == iface)
}

/// Interfaces running a handshake program other than the pinned ones (`pinned_ids`): those
/// `handshake run` protects.
pub fn run_programs(pinned_ids: &[u32]) -> Vec<interface::XdpProgram> {
    interface::xdp_programs()
        .into_iter()
        .filter(|program| {
            program.name == crate::loader::PROGRAM && !pinned_ids.contains(&program.id)
        })
        .collect()
}
