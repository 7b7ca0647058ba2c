//! The handshake XDP program: packet -> parse -> decide -> (rewrite | pass | drop) -> count.
//!
//! - `headers.rs`  finds Ethernet, IPv4/IPv6 and TCP and checks every length;
//! - `syn.rs`      answers a SYN to a protected port with the kernel's own cookie;
//! - `checksum.rs` verifies a SYN's checksums before it is answered;
//! - `syn_ack.rs`  rewrites that SYN in place into the SYN-ACK
//!   (its header writers are the library's `syn_ack_headers.rs`, shared with the benchmark);
//! - `syn_options.rs` reads the SYN's options (timestamps, and those only the kernel answers);
//! - `ack.rs`      checks the cookie of a third-packet ACK, dropping forgeries;
//! - `vlan.rs`     lifts VLAN tags out for the handling and puts them back;
//! - `flood.rs`    tells whether a SYN flood is on (forged ACKs dropped, stray ones RST);
//! - `this_host.rs` tells this host's frames (its MAC, a local address) from others';
//! - `listener.rs` finds the socket a segment belongs to;
//! - `listener_settings.rs` reads what the kernel's SYN-ACK takes from that listener;
//! - `sources.rs`  looks the source up in the operator's allow and deny lists;
//! - `rate_limit.rs` holds SYNs to the operator's rates per source and SYN-ACK destination;
//! - `verdict.rs`  carries `handle`'s verdict out to where it is counted and acted on;
//! - `dry_run.rs`  passes what would be sent or dropped, in dry run;
//! - `sample.rs`   copies frames into a ring buffer while `handshake capture` or `top` runs;
//! - `aligned.rs`  places values on the stack as the verifier wants them;
//! - `maps.rs`     holds the configuration, the protected ports and the counters;
//! - `calls.rs`    counts helper and BPF-to-BPF calls (the benchmark's build only).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod ack;
#[cfg(target_arch = "bpf")]
mod aligned;
#[cfg(target_arch = "bpf")]
mod calls;
#[cfg(target_arch = "bpf")]
mod checksum;
#[cfg(target_arch = "bpf")]
mod dry_run;
#[cfg(target_arch = "bpf")]
mod flood;
#[cfg(target_arch = "bpf")]
mod headers;
#[cfg(target_arch = "bpf")]
mod listener;
#[cfg(target_arch = "bpf")]
mod listener_settings;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod rate_limit;
#[cfg(target_arch = "bpf")]
mod sample;
#[cfg(target_arch = "bpf")]
mod sources;
#[cfg(target_arch = "bpf")]
mod syn;
#[cfg(target_arch = "bpf")]
mod syn_ack;
#[cfg(target_arch = "bpf")]
mod syn_options;
#[cfg(target_arch = "bpf")]
mod this_host;
#[cfg(target_arch = "bpf")]
mod verdict;
#[cfg(target_arch = "bpf")]
mod vlan;

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{
        bindings::{xdp_action, xdp_md},
        macros::xdp,
        programs::XdpContext,
    };
    use handshake_common::{config::Config, counters::Counter, tcp};
    use network_types::eth::EthHdr;

    use crate::{
        ack,
        calls::{self, Call},
        dry_run,
        headers::{self, Link, Parsed, Segment},
        maps, sample,
        sources::{self, Listed},
        syn,
        verdict::Verdict,
        vlan,
    };

    #[xdp]
    pub fn handshake(ctx: XdpContext) -> u32 {
        match headers::link(&ctx) {
            Link::Tags(0) => finish(&ctx, handle(ctx.ctx)),
            // See vlan.rs: one copy of the handling, for every frame.
            Link::Tags(tags @ (1 | 2)) => match vlan::lift(&ctx, tags) {
                Some(lifted) => {
                    let verdict = handle(ctx.ctx);
                    // Tags back first: then fewer values live across `finish`'s calls,
                    // and a sample holds the frame as it goes on.
                    let restored = vlan::restore(&ctx, &lifted);
                    let action = finish(&ctx, verdict);
                    if restored {
                        action
                    } else {
                        xdp_action::XDP_ABORTED
                    }
                }
                None => passed(Counter::Malformed),
            },
            Link::Tags(_) | Link::Other => passed(Counter::PassedNotTcp),
            Link::Truncated => passed(Counter::Malformed),
        }
    }

    /// A global function (exported, so BTF marks its linkage global): the verifier
    /// checks it once, on its own, whatever its callers' states, instead of once per
    /// call site (an untagged frame's, and a tagged one's after vlan.rs lifted its tags).
    /// Its stack is its own too, which with the checksum callback's must stay within the
    /// verifier's 512 bytes.
    ///
    /// It returns the verdict (`Verdict`) rather than acting on it: what every verdict
    /// shares (counting, sampling, dry run) runs after it, in `finish`, where the verifier
    /// walks it once per call site with the verdict unknown, instead of once for every
    /// path through here with its verdict a constant (Linux 6.1 gave up on the latter at a
    /// million instructions once the sampling test was added).
    #[unsafe(no_mangle)]
    #[inline(never)]
    pub fn handle(ctx: *mut xdp_md) -> u32 {
        const L2: usize = EthHdr::LEN;
        let ctx = &XdpContext::new(ctx);
        calls::count(Call::Subprogram, 1);
        let segment = match headers::parse::<L2>(ctx) {
            Parsed::Tcp(segment) => segment,
            Parsed::NotTcp => return Verdict::passed(Counter::PassedNotTcp),
            Parsed::Malformed => return Verdict::passed(Counter::Malformed),
        };
        let Some(slot) = maps::protected_slot(segment.dest_port) else {
            return Verdict::passed(Counter::PassedUnprotected);
        };
        // Asked once, here, for everything below. Entry 0 of a one-entry array is always
        // there; the verifier wants the test.
        let Some(config) = maps::config() else {
            return Verdict::passed(Counter::PassedOtherTcp);
        };
        // The lists are asked only here, after the port: other traffic pays nothing.
        let (action, counter) = match sources::listed::<L2>(ctx, &segment, config) {
            Listed::Allowed => (xdp_action::XDP_PASS, Counter::PassedAllowed),
            Listed::Denied => (xdp_action::XDP_DROP, Counter::DroppedDenied),
            Listed::Neither => decide::<L2>(ctx, &segment, slot, config),
        };
        Verdict::pack(action, counter, slot)
    }

    /// Acts on `handle`'s verdict: counts it, and for a protected port's segment samples it
    /// (`handshake capture`, `top`) and applies dry run. The one place a verdict is final.
    #[inline(always)]
    fn finish(ctx: &XdpContext, verdict: u32) -> u32 {
        let Verdict {
            action,
            counter,
            slot,
        } = Verdict::unpack(verdict);
        maps::count_verdict(counter, slot);
        if slot == 0 {
            return action;
        }
        let Some(config) = maps::config() else {
            return action;
        };
        // The action before the sample: fewer values live across the call keep this
        // function's stack small (see `handle`: 6.1 allows 512 bytes for the whole chain).
        let action = dry_run::enforce(action, config);
        sample::maybe(ctx.ctx, counter, config);
        action
    }

    /// A frame the handling never sees (see `handshake`), counted and passed.
    #[inline(always)]
    fn passed(counter: Counter) -> u32 {
        maps::count_verdict(counter as u32, 0);
        xdp_action::XDP_PASS
    }

    /// The verdict for a segment to a protected port.
    #[inline(always)]
    fn decide<const L2: usize>(
        ctx: &XdpContext,
        segment: &Segment,
        slot: u16,
        config: &Config,
    ) -> (u32, Counter) {
        let flags = segment.flags & (tcp::SYN | tcp::ACK | tcp::RST | tcp::FIN);
        if flags == tcp::SYN {
            return syn::answer::<L2>(ctx, segment, config);
        }
        // The third packet may carry FIN or data with its ACK; it never carries SYN or RST.
        if flags & (tcp::ACK | tcp::SYN | tcp::RST) == tcp::ACK {
            return ack::check::<L2>(ctx, segment, slot, config);
        }
        (xdp_action::XDP_PASS, Counter::PassedOtherTcp)
    }

    /// A program that passes everything. XDP_TX on a veth is only delivered when the peer
    /// veth has an XDP program too (veth_xdp_xmit needs the peer's XDP rings); tests and the
    /// demo attach this one there.
    #[xdp]
    pub fn handshake_pass(_ctx: XdpContext) -> u32 {
        xdp_action::XDP_PASS
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    /// The helpers we call are GPL-only.
    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 4] = *b"GPL\0";
}

#[cfg(not(target_arch = "bpf"))]
fn main() {
    panic!("handshake-xdp is built for bpfel-unknown-none by handshake-user's build.rs");
}
