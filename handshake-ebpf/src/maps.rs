//! The maps the loader shares with the program. Names are the contract with
//! handshake-user's `loader.rs`.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use handshake_common::{
    config::{CONFIG_KEY, Config, MAX_PORTS, PORTS_LEN},
    counters::{COUNTER_COUNT, PortCounters, PortSlot},
    sample::RING_BYTES,
};

use crate::calls::{self, Call};

#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Indexed by TCP destination port: an array lookup is cheaper than a hash on every packet.
/// Holds the port's counter slot, 0 when unprotected.
#[map(name = "PORTS")]
static PORTS: Array<u16> = Array::with_max_entries(PORTS_LEN, 0);

/// The port each slot belongs to (0 = free), so the loader can list the protected ports
/// by reading 1024 slots instead of 65536 ports. Only the loader reads or writes it.
#[map(name = "SLOT_PORTS")]
static SLOT_PORTS: Array<u16> = Array::with_max_entries(MAX_PORTS + 1, 0);

/// Per-port verdict counters and flood windows by slot; slot 0 holds what ports that gave
/// their slot up counted, written by the loader only.
#[map(name = "PORT_COUNTERS")]
static PORT_COUNTERS: PerCpuArray<PortSlot> = PerCpuArray::with_max_entries(MAX_PORTS + 1, 0);

/// Per-CPU, so counting never contends between cores; the loader sums the CPUs.
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// Frames sampled while `handshake capture` or `top` runs (`sample.rs`); pinned, so that a
/// later `handshake` process reads it.
#[map(name = "SAMPLES")]
pub static SAMPLES: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(CONFIG_KEY)
}

/// The counter slot of a protected port, `None` for an unprotected one.
#[inline(always)]
pub fn protected_slot(port: u16) -> Option<u16> {
    match PORTS.get(u32::from(port)) {
        Some(&slot) if slot != 0 => Some(slot),
        _ => None,
    }
}

/// This CPU's entry of a protected port's slot.
#[inline(always)]
pub fn port_slot(slot: u32) -> Option<*mut PortSlot> {
    PORT_COUNTERS.get_ptr_mut(slot)
}

/// Counts a verdict (`counter`, a `Counter`): a per-port verdict of a protected port's
/// segment (`slot` not 0) in that port's slot only, any other in `COUNTERS`. One lookup.
#[inline(always)]
pub fn count_verdict(counter: u32, slot: u32) {
    calls::count(Call::PerCpuLookup, 1);
    if slot != 0 && PortCounters::counted_per_port(counter) {
        if let Some(port) = PORT_COUNTERS.get_ptr_mut(slot) {
            unsafe { (*port).counters.count(counter) };
        }
        return;
    }
    if let Some(value) = COUNTERS.get_ptr_mut(counter) {
        unsafe { *value += 1 };
    }
}
