//! Whether a SYN flood is on, as the ACK path asks it: an ACK without a valid cookie is
//! dropped during a flood (a forged third packet, which would cost the kernel a lookup and
//! a RST) and passed otherwise (a stray ACK, which the kernel must answer with a RST).
//!
//! A flood is on when this CPU sent at least `Config::flood_syn_acks` SYN-ACKs in its
//! current and previous window of 2^30 ns (~1.07 s). The windows advance only when an
//! ACK asks, so the SYN path pays nothing: it only bumps its counter, as it always did.

use aya_ebpf::{helpers::generated::bpf_ktime_get_ns, macros::map, maps::PerCpuArray};
use handshake_common::counters::Counter;

use crate::{
    calls::{self, Call},
    maps,
};

/// Where this CPU's windows stand.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Window {
    /// `bpf_ktime_get_ns() >> WINDOW_SHIFT` of the current window.
    index: u64,
    /// This CPU's `SynAckSent` counter when the current window started.
    start: u64,
    /// SYN-ACKs this CPU sent in the previous window (0 if that window is older).
    previous: u64,
}

const WINDOW_SHIFT: u32 = 30;

#[map(name = "FLOOD_WINDOW")]
static FLOOD_WINDOW: PerCpuArray<Window> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn on() -> bool {
    let threshold = match maps::config() {
        Some(config) => u64::from(config.flood_syn_acks),
        None => 0,
    };
    if threshold == 0 {
        return true;
    }
    let (Some(window), Some(sent)) = (
        FLOOD_WINDOW.get_ptr_mut(0),
        maps::this_cpu(Counter::SynAckSent),
    ) else {
        return true;
    };
    let window = unsafe { &mut *window };
    calls::count(Call::PerCpuLookup, 2);
    calls::count(Call::Helper, 1);
    let index = unsafe { bpf_ktime_get_ns() } >> WINDOW_SHIFT;
    if window.index != index {
        // The first ACK ever asked counts every SYN-ACK since attach as the previous
        // window's: a flood that began before any ACK arrived is still seen.
        window.previous = if index == window.index + 1 || window.index == 0 {
            sent.wrapping_sub(window.start)
        } else {
            0
        };
        window.index = index;
        window.start = sent;
    }
    sent.wrapping_sub(window.start) + window.previous >= threshold
}
