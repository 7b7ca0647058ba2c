//! Packet samples for `handshake capture` and `handshake top`: while one runs, the frames
//! whose verdict it asked for (`Config::sample_counters`, 1 in `Config::sample_every`) are
//! copied, their first `SAMPLE_BYTES` bytes, into the `SAMPLES` ring buffer.
//!
//! Sampled once, where the verdict and its counter are final (main.rs's `finish`): an
//! answered SYN is sampled as the SYN-ACK it was rewritten into. With no capture running
//! the cost is one test of a Config field `finish` has already loaded.

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{
        bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_xdp_get_buff_len, bpf_xdp_load_bytes,
    },
};
use handshake_common::{
    config::Config,
    counters::COUNTER_COUNT,
    sample::{SAMPLE_BYTES, Sample},
};
use network_types::eth::EthHdr;

use crate::{
    calls::{self, Call},
    maps,
};

/// `bpf_ringbuf_submit`'s flag: do not wake the reader up.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// Samples the frame if a capture asked for `counter`'s verdicts.
#[inline(always)]
pub fn maybe(ctx: *mut xdp_md, counter: u32, config: &Config) {
    // `counter` < COUNTER_COUNT <= 64: the mask only tells the verifier so.
    const { assert!(COUNTER_COUNT <= 64) };
    if config.sample_counters != 0 && config.sample_counters & (1u64 << (counter & 63)) != 0 {
        sample(ctx, counter, config.sample_every);
    }
}

/// A global function: verified once on its own, whatever the state of each verdict's path
/// that reaches it. Integers and the context only in its signature (see FACTS: BTF).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn sample(ctx: *mut xdp_md, counter: u32, every: u32) -> u32 {
    calls::count(Call::Subprogram, 1);
    if every > 1 {
        calls::count(Call::Helper, 1);
        if unsafe { bpf_get_prandom_u32() } % every != 0 {
            return 0;
        }
    }
    calls::count(Call::Helper, 2);
    let len = unsafe { bpf_xdp_get_buff_len(ctx) };
    // Every frame that gets here has headers past Ethernet's: `<` (never `==`) gives the
    // verifier the lower bound the helper's size needs (6.1 learns none from `!=`).
    if len < EthHdr::LEN as u64 {
        return 0;
    }
    let captured = if len > SAMPLE_BYTES as u64 {
        SAMPLE_BYTES as u32
    } else {
        len as u32
    };
    let Some(mut entry) = maps::SAMPLES.reserve::<Sample>(0) else {
        return 0;
    };
    let sample = entry.as_mut_ptr();
    calls::count(Call::Helper, 3);
    unsafe {
        (*sample).time_ns = bpf_ktime_get_ns();
        (*sample).counter = counter;
        (*sample).len = len as u32;
        (*sample).captured = captured;
        (*sample)._pad = 0;
        if bpf_xdp_load_bytes(ctx, 0, (*sample).data.as_mut_ptr().cast(), captured) != 0 {
            entry.discard(0);
            return 0;
        }
    }
    // No wakeup: waking the reader is an irq_work (a self-IPI, a VM exit on a virtual
    // machine: measured 7.6 us per sample). The reader drains the ring every 50 ms instead.
    entry.submit(BPF_RB_NO_WAKEUP);
    0
}
