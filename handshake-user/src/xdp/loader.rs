//! Loading the XDP program, filling its maps and attaching it to an interface.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use handshake_common::config::{Config, MODE_GENERIC, MODE_NATIVE};

use crate::{XDP_OBJECT, counters::Snapshot, local_table::HostRoutes, maps::Maps, pins};

/// The program in the object that answers SYNs, and the pass-through one for veth peers.
pub const PROGRAM: &str = "handshake";
pub const PASS_PROGRAM: &str = "handshake_pass";

/// What an upgrade appends to the names of the pins it makes beside the running ones.
/// (Not a dot: the BPF filesystem refuses names with dots, `bpf_lookup`.)
pub const NEXT: &str = "_next";

/// How to attach: `Auto` tries native XDP and falls back to generic with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Native,
    Generic,
    Auto,
}

impl Mode {
    /// The byte `Config::mode` records for `handshake status`.
    pub fn config_byte(self) -> u8 {
        match self {
            Mode::Native => MODE_NATIVE,
            _ => MODE_GENERIC,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Generic => "generic",
            Mode::Auto => "auto",
        }
    }

    /// The name of the mode `Config::mode` recorded.
    pub fn from_config_byte(byte: u8) -> &'static str {
        match byte {
            MODE_NATIVE => Mode::Native.name(),
            MODE_GENERIC => Mode::Generic.name(),
            _ => "unknown",
        }
    }
}

/// The handshake program, loaded and configured; detached when dropped unless its link
/// was pinned.
pub struct Handshake {
    ebpf: Ebpf,
    pub maps: Maps,
    attached: Option<(String, XdpLinkId, Mode)>,
    /// The local routing table as read at load, for the first `attach` to take its
    /// interface's view from instead of reading it again; a later attach (`run` after
    /// an interface came back) reads it afresh.
    routes_at_load: Option<HostRoutes>,
}

impl Handshake {
    /// Loads the embedded object and runs the verifier over the program.
    pub fn load() -> anyhow::Result<Self> {
        Self::load_with_pins(None)
    }

    /// Loads, and pins the program and its maps in `pin_dir` (which must exist).
    pub fn load_with_pins(pin_dir: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_object(XDP_OBJECT, pin_dir)
    }

    /// Loads another build of the program: the benchmark's, which counts its calls.
    pub fn load_object(object: &[u8], pin_dir: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_inner(
            object,
            &[],
            pin_dir.map(|dir| dir.join(pins::PROGRAM)),
            |name| pin_dir.map(|dir| dir.join(name)),
        )
    }

    /// Loads `object` to replace the program pinned in `dir` (an upgrade, upgrade.rs): the
    /// maps named in `inherited` are the pinned ones, shared with the running program;
    /// the program and every other map are pinned under the same names with `_next`
    /// appended, for the caller to rename once the link runs the new program.
    pub fn load_inheriting(
        object: &[u8],
        dir: &Path,
        inherited: &[&'static str],
    ) -> anyhow::Result<Self> {
        let next = |name: &str| dir.join(format!("{name}{NEXT}"));
        let pins: Vec<(&str, PathBuf)> = inherited
            .iter()
            .map(|&name| (name, dir.join(name)))
            .collect();
        Self::load_inner(object, &pins, Some(next(pins::PROGRAM)), |name| {
            (!inherited.contains(&name)).then(|| next(name))
        })
    }

    fn load_inner(
        object: &[u8],
        inherited: &[(&str, PathBuf)],
        program_pin: Option<PathBuf>,
        map_pin: impl Fn(&str) -> Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        crate::privileges::require("loading and attaching XDP")?;
        let layout = crate::kernel_layout::read()?;
        let mut loader = EbpfLoader::new();
        loader.override_global(crate::kernel_layout::GLOBAL, &layout, true);
        // aya opens a map pinned at the given path instead of creating it.
        for (name, path) in inherited {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(object)
            .context("loading the embedded XDP object failed")?;
        let program: &mut Xdp = program(&mut ebpf, PROGRAM)?;
        program.load().map_err(explain_load_error)?;
        if let Some(path) = program_pin {
            program
                .pin(&path)
                .with_context(|| format!("pinning the program at {} failed", path.display()))?;
        }
        let mut maps = Maps::take(&mut ebpf, map_pin)?;
        // Which destinations are this host's: without them every SYN would be passed.
        // (IPv6 link-local ones once `attach` knows the interface.)
        let routes = HostRoutes::read()?;
        maps.local_routes.replace(&routes.seen_from(None))?;
        Ok(Self {
            ebpf,
            maps,
            attached: None,
            routes_at_load: Some(routes),
        })
    }

    /// Gives the program the local routing table as frames arriving on `iface` see it
    /// (with its IPv6 link-local addresses), before it runs there.
    pub fn see_local_routes_from(&mut self, iface: &str) -> anyhow::Result<()> {
        let routes = match self.routes_at_load.take() {
            Some(routes) => routes,
            None => HostRoutes::read()?,
        };
        self.maps
            .local_routes
            .replace(&routes.seen_from(Some(iface)))
    }

    /// Makes the pinned XDP link at `path` run this program instead of the one it runs
    /// (`bpf_link_update`: the driver swaps one pointer, so every frame meets one program
    /// or the other, never neither).
    pub fn replace_on_link(&mut self, path: &Path) -> anyhow::Result<()> {
        let link = PinnedLink::from_pin(path)
            .with_context(|| format!("opening the pinned link {} failed", path.display()))?;
        let link = XdpLink::try_from(FdLink::from(link))
            .with_context(|| format!("{} is not an XDP link", path.display()))?;
        let program: &mut Xdp = program(&mut self.ebpf, PROGRAM)?;
        program
            .attach_to_link(link)
            .context("replacing the program on the XDP link (bpf_link_update) failed")?;
        Ok(())
    }

    /// A map that only another build of the program has (the benchmark's `CALLS`).
    pub fn take_map(&mut self, name: &str) -> Option<aya::maps::Map> {
        self.ebpf.take_map(name)
    }

    /// Starts forwarding the program's aya-log messages to the `log` crate.
    pub fn take_logger(&mut self) -> anyhow::Result<aya_log::EbpfLogger<&'static dyn log::Log>> {
        aya_log::EbpfLogger::init(&mut self.ebpf)
            .context("reading the XDP program's log buffer failed")
    }

    pub fn set_config(&mut self, config: &Config) -> anyhow::Result<()> {
        self.maps.set_config(config)
    }

    /// Protects exactly `ports`: a port not listed is unprotected afterwards.
    pub fn set_ports(&mut self, ports: &[u16]) -> anyhow::Result<()> {
        self.maps.ports.replace(ports)
    }

    /// Attaches to `iface` in the calling thread's network namespace.
    pub fn attach(&mut self, iface: &str, mode: Mode) -> anyhow::Result<Mode> {
        if self.attached.is_some() {
            bail!("handshake is already attached; detach it first");
        }
        crate::interface::index(iface)?;
        self.see_local_routes_from(iface)?;
        if let Some(other) = crate::interface::xdp_program(iface) {
            if other.name == PROGRAM {
                bail!(
                    "handshake already protects {iface} (program id {}): `handshake status` shows by which command; stop that `handshake run`, or `handshake detach --iface {iface}`, first",
                    other.id
                );
            }
            bail!(
                "{iface} already has an XDP program (id {}, name {}); handshake will not replace it: remove it first (`ip link set dev {iface} xdp off`, or `bpftool link detach id N` when a BPF link holds it; `bpftool link` lists links)",
                other.id,
                other.name
            );
        }
        let program: &mut Xdp = program(&mut self.ebpf, PROGRAM)?;
        let attached = match mode {
            Mode::Native => program.attach(iface, XdpMode::Driver).map(|link| (link, Mode::Native)),
            Mode::Generic => program.attach(iface, XdpMode::Skb).map(|link| (link, Mode::Generic)),
            Mode::Auto => program.attach(iface, XdpMode::Driver).map(|link| (link, Mode::Native)).or_else(|error| {
                log::warn!("native XDP on {iface} failed ({}); falling back to generic XDP, which runs after the kernel allocates an skb and costs more per packet", cause(&error));
                program.attach(iface, XdpMode::Skb).map(|link| (link, Mode::Generic))
            }),
        };
        let (link, mode) = attached.map_err(|error| attach_error(iface, mode, error))?;
        self.attached = Some((iface.to_owned(), link, mode));
        let mut config = self.maps.config()?;
        config.mode = mode.config_byte();
        self.maps.set_config(&config)?;
        Ok(mode)
    }

    /// Pins the attachment's link at `path`: the program then stays attached after this
    /// process exits, until the pin is removed (`handshake detach`).
    pub fn pin_link(&mut self, path: &Path) -> anyhow::Result<()> {
        let (_, link, _) = self
            .attached
            .take()
            .ok_or_else(|| anyhow!("nothing is attached to pin"))?;
        let program: &mut Xdp = program(&mut self.ebpf, PROGRAM)?;
        let link = FdLink::try_from(program.take_link(link)?).context(
            "the kernel attached XDP without a BPF link (Linux 5.9+ has them); pinning needs one",
        )?;
        link.pin(path)
            .with_context(|| format!("pinning the XDP link at {} failed", path.display()))?;
        Ok(())
    }

    pub fn detach(&mut self) -> anyhow::Result<()> {
        if let Some((iface, link, _)) = self.attached.take() {
            let program: &mut Xdp = program(&mut self.ebpf, PROGRAM)?;
            program
                .detach(link)
                .with_context(|| format!("detaching from {iface} failed"))?;
        }
        Ok(())
    }

    /// The counters summed over every CPU.
    pub fn counters(&self) -> anyhow::Result<Snapshot> {
        self.maps.counters()
    }

    /// The kernel's id of the loaded program, as `ip link` shows it on an interface.
    pub fn program_id(&self) -> anyhow::Result<u32> {
        let program = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| anyhow!("the XDP object has no program {PROGRAM}"))?;
        Ok(program.info()?.id())
    }

    /// The loaded program, for BPF_PROG_TEST_RUN.
    pub fn program(&mut self) -> anyhow::Result<&mut Xdp> {
        program(&mut self.ebpf, PROGRAM)
    }
}

/// The pass-through program a veth peer needs before XDP_TX frames reach it.
pub struct PassThrough {
    _ebpf: Ebpf,
}

impl PassThrough {
    pub fn attach(iface: &str) -> anyhow::Result<Self> {
        let mut ebpf = Ebpf::load(XDP_OBJECT)?;
        let program: &mut Xdp = program(&mut ebpf, PASS_PROGRAM)?;
        program.load()?;
        program
            .attach(iface, XdpMode::Driver)
            .map_err(|error| attach_error(iface, Mode::Native, error))?;
        Ok(Self { _ebpf: ebpf })
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut Xdp> {
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("the XDP object has no program {name}"))?;
    Ok(program.try_into()?)
}

/// The verifier's log is long; the line people need is the helper the kernel lacks.
fn explain_load_error(error: ProgramError) -> anyhow::Error {
    if let ProgramError::LoadError {
        io_error,
        verifier_log,
    } = &error
    {
        let log = verifier_log.to_string();
        if let Some(line) = log.lines().find(|line| line.contains("unknown func")) {
            return anyhow!(
                "this kernel lacks a BPF helper handshake needs ({line}); handshake needs Linux 5.17 or newer (bpf_tcp_gen_syncookie, bpf_loop)"
            );
        }
        return anyhow!("the kernel's verifier rejected the XDP program ({io_error}):\n{log}");
    }
    anyhow!(error).context("loading the XDP program failed")
}

/// The kernel's own error (with its errno) first, then what to try.
fn attach_error(iface: &str, mode: Mode, error: ProgramError) -> anyhow::Error {
    let hint = match mode {
        Mode::Native => "; try --xdp-mode generic or auto",
        _ => "",
    };
    anyhow!(
        "attaching XDP ({mode:?}) to {iface} failed: {}{hint}",
        cause(&error)
    )
}

/// An attach error with its errno, and what the errno means for XDP: a BPF link attach
/// carries no netlink extack, so the driver's own sentence (e.g. veth's "Peer MTU is too
/// large to set XDP") is lost and the errno is all there is.
fn cause(error: &ProgramError) -> String {
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    let mut errno = None;
    while let Some(inner) = source {
        cause = format!("{cause}: {inner}");
        errno = errno.or(inner
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error));
        source = inner.source();
    }
    let meaning = match errno {
        Some(libc::ERANGE) => {
            " (the MTU, or a veth peer's MTU, is too large for XDP in this mode: lower it)"
        }
        Some(libc::EOPNOTSUPP) => " (the driver has no native XDP)",
        Some(libc::EBUSY) => " (another XDP program is attached)",
        _ => "",
    };
    format!("{cause}{meaning}")
}
