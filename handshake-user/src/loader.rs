//! Loading the XDP program, filling its maps and attaching it to an interface.

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};
use handshake_common::{
    config::{CONFIG_KEY, Config},
    counters::COUNTER_COUNT,
};

use crate::{XDP_OBJECT, counters::Snapshot};

/// The program in the object that answers SYNs, and the pass-through one for veth peers.
pub const PROGRAM: &str = "handshake";
pub const PASS_PROGRAM: &str = "handshake_pass";

/// How to attach: `Auto` tries native XDP and falls back to generic with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Native,
    Generic,
    Auto,
}

/// The handshake program, loaded and configured; detached when dropped.
pub struct Handshake {
    ebpf: Ebpf,
    config: Array<MapData, Config>,
    ports: Array<MapData, u8>,
    counters: PerCpuArray<MapData, u64>,
    attached: Option<(String, XdpLinkId, Mode)>,
}

impl Handshake {
    /// Loads the embedded object and runs the verifier over the program.
    pub fn load() -> anyhow::Result<Self> {
        crate::privileges::require()?;
        let mut ebpf = Ebpf::load(XDP_OBJECT).context("loading the embedded XDP object failed")?;
        let program: &mut Xdp = program(&mut ebpf, PROGRAM)?;
        program.load().map_err(explain_load_error)?;
        let config = Array::try_from(take_map(&mut ebpf, "CONFIG")?)?;
        let ports = Array::try_from(take_map(&mut ebpf, "PORTS")?)?;
        let counters = PerCpuArray::try_from(take_map(&mut ebpf, "COUNTERS")?)?;
        Ok(Self {
            ebpf,
            config,
            ports,
            counters,
            attached: None,
        })
    }

    /// Starts forwarding the program's aya-log messages to the `log` crate.
    pub fn take_logger(&mut self) -> anyhow::Result<aya_log::EbpfLogger<&'static dyn log::Log>> {
        aya_log::EbpfLogger::init(&mut self.ebpf)
            .context("reading the XDP program's log buffer failed")
    }

    pub fn set_config(&mut self, config: &Config) -> anyhow::Result<()> {
        self.config
            .set(CONFIG_KEY, config, 0)
            .context("writing the CONFIG map failed")
    }

    /// Protects exactly `ports`: a port not listed is unprotected afterwards.
    pub fn set_ports(&mut self, ports: &[u16]) -> anyhow::Result<()> {
        for port in 0..=u16::MAX {
            let protected = u8::from(ports.contains(&port));
            if self.ports.get(&u32::from(port), 0)? != protected {
                self.ports.set(u32::from(port), protected, 0)?;
            }
        }
        Ok(())
    }

    /// Attaches to `iface` in the calling thread's network namespace.
    pub fn attach(&mut self, iface: &str, mode: Mode) -> anyhow::Result<Mode> {
        if self.attached.is_some() {
            bail!("handshake is already attached; detach it first");
        }
        crate::interface::index(iface)?;
        let program: &mut Xdp = program(&mut self.ebpf, PROGRAM)?;
        let attached = match mode {
            Mode::Native => program.attach(iface, XdpMode::Driver).map(|link| (link, Mode::Native)),
            Mode::Generic => program.attach(iface, XdpMode::Skb).map(|link| (link, Mode::Generic)),
            Mode::Auto => program.attach(iface, XdpMode::Driver).map(|link| (link, Mode::Native)).or_else(|error| {
                log::warn!("native XDP on {iface} failed ({error}); falling back to generic XDP, which runs after the kernel allocates an skb and costs more per packet");
                program.attach(iface, XdpMode::Skb).map(|link| (link, Mode::Generic))
            }),
        };
        let (link, mode) = attached.map_err(|error| attach_error(iface, mode, error))?;
        self.attached = Some((iface.to_owned(), link, mode));
        Ok(mode)
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
        let mut totals = [0u64; COUNTER_COUNT as usize];
        for (index, total) in totals.iter_mut().enumerate() {
            let per_cpu = self
                .counters
                .get(&(index as u32), 0)
                .context("reading the COUNTERS map failed")?;
            *total = per_cpu.iter().sum();
        }
        Ok(Snapshot(totals))
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

fn take_map(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("the XDP object has no map {name}"))
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
                "this kernel lacks a BPF helper handshake needs ({line}); handshake needs Linux 5.3 or newer (bpf_tcp_gen_syncookie)"
            );
        }
        return anyhow!("the kernel's verifier rejected the XDP program ({io_error}):\n{log}");
    }
    anyhow!(error).context("loading the XDP program failed")
}

fn attach_error(iface: &str, mode: Mode, error: ProgramError) -> anyhow::Error {
    let hint = match mode {
        Mode::Native => "; the driver may not support native XDP: try --xdp-mode generic or auto",
        _ => "",
    };
    anyhow!(
        "attaching XDP ({mode:?}) to {iface} failed: {error}{hint}; `ip link show {iface}` shows whether another XDP program is attached"
    )
}
