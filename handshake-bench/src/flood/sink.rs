//! `flood_sink` on the lab's client-side veth: counts SYN-ACKs (and RSTs) the server sends
//! to spoofed addresses and drops them. It also serves as the XDP program that veth needs
//! before the server's XDP_TX frames are delivered to it (see
//! `handshake::loader::PassThrough`).

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
    programs::{Xdp, XdpMode},
};
use handshake::lab::{CLIENT_IFACE, Lab, run_in};

use super::FLOOD_OBJECT;

pub struct Sink {
    _ebpf: Ebpf,
    returned: PerCpuArray<MapData, u64>,
}

/// What came back to spoofed addresses so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Returned {
    pub syn_acks: u64,
    pub resets: u64,
}

impl Sink {
    /// Attaches (native XDP) to the lab's client-side veth.
    pub fn attach(lab: &Lab) -> anyhow::Result<Self> {
        run_in(&lab.client, || {
            let mut ebpf = Ebpf::load(FLOOD_OBJECT).context("loading the flood object failed")?;
            let program: &mut Xdp = ebpf
                .program_mut("flood_sink")
                .ok_or_else(|| anyhow!("no flood_sink program"))?
                .try_into()?;
            program.load().context("the verifier rejected flood_sink")?;
            program
                .attach(CLIENT_IFACE, XdpMode::Driver)
                .with_context(|| format!("attaching flood_sink to {CLIENT_IFACE} failed"))?;
            let map = ebpf
                .take_map("RETURNED")
                .ok_or_else(|| anyhow!("no RETURNED map"))?;
            let returned = PerCpuArray::try_from(map)?;
            Ok(Self {
                _ebpf: ebpf,
                returned,
            })
        })?
    }

    pub fn returned(&self) -> anyhow::Result<Returned> {
        let total =
            |slot: u32| -> anyhow::Result<u64> { Ok(self.returned.get(&slot, 0)?.iter().sum()) };
        Ok(Returned {
            syn_acks: total(0)?,
            resets: total(1)?,
        })
    }
}
