//! What the kernel says about a pinned attachment, never what the folder names suggest:
//! an interface deleted and created again under the same name, or an XDP link detached by
//! `bpftool link detach`, leaves the pins in place but protects nothing. Every command
//! that reports or changes an attachment checks it here first.

use std::time::SystemTime;

use anyhow::{Context as _, anyhow};
use aya::programs::{
    ProgramInfo,
    links::{FdLink, PinnedLink},
};

use crate::{
    interface,
    loader::Mode,
    local_table::HostRoutes,
    maps::Maps,
    pins::{self, PinRoot},
    ports,
    settings::Settings,
    source_lists::List,
};

/// An attachment's pins, opened.
pub struct Pinned {
    pub iface: String,
    pub program_id: u32,
    pub loaded_at: Option<SystemTime>,
    pub maps: Maps,
    link_program_id: u32,
}

/// The pins of one interface, as the kernel sees them.
pub enum Inspected {
    Protected(Pinned),
    /// Pins that protect nothing any more, and why (with what to do).
    Gone(Pinned, String),
    /// Pins missing (an attach that did not finish) or unreadable, and what to do.
    Stale(String),
}

impl Inspected {
    pub fn pinned(&self) -> Option<&Pinned> {
        match self {
            Inspected::Protected(pinned) | Inspected::Gone(pinned, _) => Some(pinned),
            Inspected::Stale(_) => None,
        }
    }

    /// Why it protects nothing, and what to do; `None` when it protects.
    pub fn problem(&self) -> Option<&str> {
        match self {
            Inspected::Protected(_) => None,
            Inspected::Gone(_, problem) | Inspected::Stale(problem) => Some(problem),
        }
    }
}

/// Opens and checks the pins of `iface` (whose folder exists).
pub fn inspect(root: &PinRoot, iface: &str) -> Inspected {
    match Pinned::open(root, iface) {
        Ok(pinned) => match pinned.check(root) {
            Ok(()) => Inspected::Protected(pinned),
            Err(problem) => Inspected::Gone(pinned, problem),
        },
        Err(error) => Inspected::Stale(format!(
            "stale pins from an attach that did not finish ({error:#}); {} removes them",
            root.command(&format!("detach --iface {iface}"))
        )),
    }
}

impl Pinned {
    fn open(root: &PinRoot, iface: &str) -> anyhow::Result<Self> {
        let dir = root.iface_dir(iface);
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
            maps: Maps::from_pins(&dir)?,
            link_program_id,
        })
    }

    /// `Ok` when the interface of this name in this namespace runs the pinned program
    /// through the pinned link; otherwise why protection is gone and what to do.
    fn check(&self, root: &PinRoot) -> Result<(), String> {
        let iface = &self.iface;
        let again = format!(
            "run {} again (it replaces these pins), or {} to remove them",
            root.command(&format!(
                "attach --iface {iface} --ports {}",
                ports::join(&self.ports())
            )),
            root.command(&format!("detach --iface {iface}"))
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

    /// What the program was given at attach and the host has changed since:
    /// `net.core.rmem_max`, the interface's MAC and hop limit (`Settings::validate` reads
    /// them afresh and the fields are compared one by one), and the local routing table.
    /// Empty when nothing changed, or when they cannot be read. The program cannot read
    /// them itself (`handshake run` follows them, `follow_host.rs`), and an answer cut to
    /// a host that has changed may differ from the kernel's.
    pub fn changed_since_attach(&self) -> Vec<&'static str> {
        let Ok(attached) = self.maps.config() else {
            return Vec::new();
        };
        let settings = Settings {
            iface: self.iface.clone(),
            ports: Vec::new(),
            mode: Mode::Auto,
            mss: None,
            timestamps: false,
            allow: Vec::new(),
            deny: Vec::new(),
            dry_run: false,
            limits: Default::default(),
        };
        let Ok((now, _)) = settings.validate() else {
            return Vec::new();
        };
        // The namespace's TCP sysctls and the listeners' settings are read by the program
        // per SYN; these are what it was given at attach.
        [
            (attached.rmem_max != now.rmem_max, "net.core.rmem_max"),
            (
                attached.hop_limit != now.hop_limit,
                "the interface's IPv6 hop_limit",
            ),
            (attached.mac != now.mac, "the interface's MAC address"),
        ]
        .into_iter()
        .filter_map(|(changed, what)| changed.then_some(what))
        .chain(
            self.local_routes_changed()
                .then_some("the namespace's local addresses (`ip route show table local`)"),
        )
        .collect()
    }

    /// Whether the host's local routing table differs from the program's copy: a SYN to
    /// an address added since is passed to the kernel, one to an address removed since
    /// is still answered.
    fn local_routes_changed(&self) -> bool {
        match (self.maps.local_routes.table(), HostRoutes::read()) {
            (Ok(attached), Ok(now)) => attached != now.seen_from(Some(&self.iface)),
            _ => false,
        }
    }

    /// Whether the program counts without enforcing; `None` when CONFIG cannot be read.
    pub fn dry_run(&self) -> Option<bool> {
        self.maps.config().ok().map(|config| config.dry_run != 0)
    }

    /// How many prefixes `list` holds.
    pub fn list_len(&self, list: List) -> Option<usize> {
        self.maps
            .sources
            .tries(list)
            .prefixes()
            .ok()
            .map(|p| p.len())
    }

    pub fn ports(&self) -> Vec<u16> {
        self.maps
            .ports
            .list()
            .map(|ports| ports.into_keys().collect())
            .unwrap_or_default()
    }
}

/// The attachment of `iface` in this namespace, checked against the kernel: the error says
/// what is wrong (not attached, stale, recreated) and what to do.
pub fn protected(root: &PinRoot, iface: &str) -> anyhow::Result<Pinned> {
    interface::check_name(iface)?;
    if !root.has(iface)? {
        return Err(not_attached(root, iface));
    }
    match inspect(root, iface) {
        Inspected::Protected(pinned) => Ok(pinned),
        Inspected::Gone(_, problem) => Err(anyhow!("{problem}")),
        Inspected::Stale(problem) => Err(anyhow!("{}: {problem}", root.iface_dir(iface).display())),
    }
}

/// Why a command about `iface` finds no pins: `handshake run` protects it, or nothing does.
pub fn not_attached(root: &PinRoot, iface: &str) -> anyhow::Error {
    if let Some(running) = run_programs(&[])
        .into_iter()
        .find(|program| program.iface == iface)
    {
        return anyhow!(
            "{iface} is protected by `handshake run` (program id {}), not by pins: that process prints its counters, serves them with --metrics, and detaches on Ctrl-C or SIGTERM",
            running.id
        );
    }
    anyhow!(
        "handshake is not attached to {iface} (no {}); {} lists what it protects",
        root.iface_dir(iface).display(),
        root.command("status")
    )
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
