//! A SYN flood for the lab, and the counter of what comes back.
//!
//! The generator is an XDP program (handshake-bench-ebpf's `handshake-flood` object)
//! that BPF_PROG_TEST_RUN runs in live-frames mode: the kernel sends every frame it
//! returns XDP_TX out of the lab's client-side veth, to the server. Sources are spoofed
//! from 198.18.128.0/17 only, every flood is bounded in packets and in time, and it sends
//! on nothing but the veth a `Lab` created (checked here and again in the program).

pub mod generator;
pub mod sink;

/// The benchmark's XDP object (see build.rs), embedded in the binary.
pub static FLOOD_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/handshake-flood"));

pub use self::{
    generator::{Flood, FloodReport, send},
    sink::{Returned, Sink},
};

/// Routes the spoofed range back through the client namespace, so that what the server's
/// kernel answers to spoofed sources (SYN-ACKs, RSTs) reaches the sink rather than being
/// dropped for want of a route. Nothing in the lab owns those addresses.
pub fn route_spoofed_sources(lab: &handshake::lab::Lab) -> anyhow::Result<()> {
    let via = handshake::lab::CLIENT_V4.to_string();
    lab.exec(
        &lab.server,
        &["ip", "route", "add", "198.18.128.0/17", "via", &via],
    )?;
    Ok(())
}
