//! Whether a SYN flood is on, as the ACK path asks it: an ACK without a valid cookie is
//! dropped during a flood (a forged third packet, which would cost the kernel a lookup and
//! a RST) and passed otherwise (a stray ACK, which the kernel must answer with a RST).
//!
//! A flood is on for a port when this CPU sent at least `Config::flood_syn_acks` SYN-ACKs
//! for it in its current and previous window of 2^30 ns (~1.07 s): per port, as the
//! kernel checks cookies per listener (`tcp_synq_no_recent_overflow`), and in the port's
//! slot, which the SYN path counts in anyway. The windows advance only when an
//! ACK asks, so the SYN path pays nothing: it only bumps its counter, as it always did.

use aya_ebpf::helpers::generated::bpf_ktime_get_ns;
use handshake_common::{config::Config, counters::PortSlot};

use crate::{
    calls::{self, Call},
    maps,
};

const WINDOW_SHIFT: u32 = 30;

/// Whether a flood is on for the protected port of counter slot `slot`.
#[inline(always)]
pub fn on(slot: u16, config: &Config) -> bool {
    let threshold = u64::from(config.flood_syn_acks);
    if threshold == 0 {
        return true;
    }
    calls::count(Call::PerCpuLookup, 1);
    let Some(port) = maps::port_slot(u32::from(slot)) else {
        return true;
    };
    let PortSlot {
        counters,
        flood: window,
    } = unsafe { &mut *port };
    let sent = counters.syn_ack_sent;
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
