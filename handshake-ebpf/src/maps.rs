//! The maps the loader shares with the program. Names are the contract with
//! handshake-user's `loader.rs`.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use handshake_common::{
    config::{CONFIG_KEY, Config, PORTS_LEN},
    counters::{COUNTER_COUNT, Counter},
};

#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Indexed by TCP destination port: an array lookup is cheaper than a hash on every packet.
#[map(name = "PORTS")]
static PORTS: Array<u8> = Array::with_max_entries(PORTS_LEN, 0);

/// Per-CPU, so counting never contends between cores; the loader sums the CPUs.
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

#[inline(always)]
pub fn config() -> Option<&'static Config> {
    CONFIG.get(CONFIG_KEY)
}

#[inline(always)]
pub fn is_protected(port: u16) -> bool {
    matches!(PORTS.get(u32::from(port)), Some(&flag) if flag != 0)
}

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        unsafe { *value += 1 };
    }
}
