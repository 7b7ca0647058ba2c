//! What one call costs on this host, the unit the microbenchmarks' call counts are
//! multiplied by: `helper_calls` (a helper), `subprogram_calls` (a BPF-to-BPF call) and
//! `clock_reads` (`bpf_ktime_get_ns`, which a SYN-ACK with timestamps makes once; under a
//! hypervisor it reads the paravirtual clock, dearer than the bare TSC). Calls and returns
//! are what the CPU's mitigations (retpolines, return thunks, AMD's SRSO "Safe RET") make
//! dearer; the rest of a program's instructions run at full speed. Each program makes
//! `CALLS` calls that do almost nothing: timed against XDP_PASS, the difference over
//! `CALLS` is one call.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_get_numa_node_id, bpf_ktime_get_ns},
    macros::xdp,
    programs::XdpContext,
};
use handshake_common::flood::CALL_COST_CALLS as CALLS;

/// `bpf_get_numa_node_id`: a helper the verifier does not inline, whose body is one load.
#[xdp]
pub fn helper_calls(_ctx: XdpContext) -> u32 {
    let mut nodes = 0;
    for _ in 0..CALLS {
        nodes += unsafe { bpf_get_numa_node_id() };
    }
    verdict(nodes)
}

#[xdp]
pub fn clock_reads(_ctx: XdpContext) -> u32 {
    let mut now = 0u64;
    for _ in 0..CALLS {
        now = now.wrapping_add(unsafe { bpf_ktime_get_ns() });
    }
    verdict(now as i64)
}

#[xdp]
pub fn subprogram_calls(_ctx: XdpContext) -> u32 {
    let mut sum = 0u32;
    for round in 0..CALLS {
        sum = step(sum, round);
    }
    verdict(sum as i64)
}

/// Not inlined, and its result used: each of the loop's rounds stays a call.
#[inline(never)]
fn step(sum: u32, round: u32) -> u32 {
    unsafe { core::ptr::read_volatile(&sum.wrapping_add(round)) }
}

/// XDP_PASS whatever the calls returned, in a way the compiler cannot foresee.
#[inline(always)]
fn verdict(value: i64) -> u32 {
    if value == i64::MIN {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}
