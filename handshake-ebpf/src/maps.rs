//! The maps the loader shares with the program. Names are the contract with
//! handshake-user's `loader.rs`.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use handshake_common::{
    config::{CONFIG_KEY, Config, MAX_PORTS, PORTS_LEN},
    counters::{COUNTER_COUNT, Counter, PortCounters},
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

/// Per-port verdict counters by slot; slot 0 is never used.
#[map(name = "PORT_COUNTERS")]
static PORT_COUNTERS: PerCpuArray<PortCounters> = PerCpuArray::with_max_entries(MAX_PORTS + 1, 0);

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

/// This CPU's count of `counter`.
#[inline(always)]
pub fn this_cpu(counter: Counter) -> Option<u64> {
    // Counted by its caller, `flood::on`.
    COUNTERS.get(counter as u32).copied()
}

/// Counts a verdict (`counter`, a `Counter`), and for a protected port's segment (`slot`
/// not 0) also in that port's slot.
#[inline(always)]
pub fn count_verdict(counter: u32, slot: u32) {
    calls::count(Call::PerCpuLookup, if slot != 0 { 2 } else { 1 });
    if let Some(value) = COUNTERS.get_ptr_mut(counter) {
        unsafe { *value += 1 };
    }
    if slot != 0
        && let Some(port) = PORT_COUNTERS.get_ptr_mut(slot)
    {
        unsafe { (*port).count(counter) };
    }
}
