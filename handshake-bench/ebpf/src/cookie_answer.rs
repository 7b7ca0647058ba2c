//! `cookie_answer`: what answering a SYN costs at the very least once the answer is
//! written: `cookie_only`'s lookup and cookie, then the SYN turned in place into an
//! MSS-only SYN-ACK by handshake's own header writers (MACs, addresses and ports swapped,
//! fresh IP and TCP headers and checksums; handshake-ebpf's syn_ack_headers.rs), the tail
//! cut, and sent back. Its MSS and window are fixed: no listener settings, no checks of the
//! SYN, no counters. So the gap between it and `cookie_only` is what writing an answer
//! costs on this host, which handshake's SYN path pays as well; the microbenchmarks show
//! both floors.
//!
//! Like `cookie_only` it takes only what the benchmark sends: IPv4 without options or IPv6
//! without extension headers, and a 40-byte TCP header.

use aya_ebpf::{
    bindings::xdp_action, helpers::generated::bpf_xdp_adjust_tail, macros::xdp,
    programs::XdpContext,
};
use handshake_common::{
    checksum::add_wide,
    syn_ack::{Layout, MSS_ONLY_LEN, SynAck},
};
use handshake_ebpf::syn_ack_headers::{swap_macs, write_ipv4, write_ipv6, write_tcp};

use crate::{cookie_only::cookie, program::ptr_at};

const ETH_LEN: usize = 14;
/// Fixed where handshake reads the listener and the interface: the values of the
/// benchmark's own frames (handshake-bench's frames.rs), so that the benchmark checks this
/// answer against a frame built there, byte for byte, before it times it.
const MSS: u16 = 1460;
const WINDOW: u16 = 64240;
const TTL: u8 = 64;

#[xdp]
pub fn cookie_answer(ctx: XdpContext) -> u32 {
    let Some(eth) = ptr_at::<[u8; ETH_LEN]>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    let answered = match unsafe { [(*eth)[12], (*eth)[13]] } {
        [0x08, 0x00] => answer::<20>(&ctx),
        [0x86, 0xdd] => answer::<40>(&ctx),
        _ => None,
    };
    match answered {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}

#[inline(always)]
fn answer<const IP_LEN: usize>(ctx: &XdpContext) -> Option<()> {
    let cookie = cookie::<IP_LEN>(ctx)?;
    let th = unsafe { *ptr_at::<[u8; 8]>(ctx, ETH_LEN + IP_LEN)? };
    // Source and destination lie side by side in both IP headers; swapped, they sum the
    // same, so the SYN's sum serves both of the answer's checksums.
    let addresses = if IP_LEN == 20 {
        add_wide(0, unsafe { &*ptr_at::<[u8; 8]>(ctx, ETH_LEN + 12)? })
    } else {
        add_wide(0, unsafe { &*ptr_at::<[u8; 32]>(ctx, ETH_LEN + 8)? })
    };
    let header = SynAck {
        source_port: u16::from_be_bytes([th[2], th[3]]),
        dest_port: u16::from_be_bytes([th[0], th[1]]),
        cookie,
        client_seq: u32::from_be_bytes([th[4], th[5], th[6], th[7]]),
        window: WINDOW,
        mss: MSS,
        layout: Layout::MssOnly,
        sack_ok: false,
        tsval: 0,
        tsecr: 0,
        wscale: 0,
        ece: false,
    };
    let delta = (ETH_LEN + IP_LEN + MSS_ONLY_LEN) as i32 - (ctx.data_end() - ctx.data()) as i32;
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return None;
    }
    // handshake's own writers (handshake-ebpf's syn_ack_headers.rs), with this floor's
    // fixed TOS 0, TTL and no flow label.
    if IP_LEN == 20 {
        write_ipv4::<ETH_LEN>(ctx, MSS_ONLY_LEN, 0, TTL, addresses).ok()?;
    } else {
        write_ipv6::<ETH_LEN>(ctx, MSS_ONLY_LEN, [0x60, 0, 0, 0], TTL).ok()?;
    }
    write_tcp::<ETH_LEN, IP_LEN>(ctx, &header, addresses).ok()?;
    swap_macs(ctx).ok()?;
    Some(())
}
