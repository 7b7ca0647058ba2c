//! `cookie_answer`: what answering a SYN costs at the very least once the answer is
//! written: `cookie_only`'s lookup and cookie, then the SYN turned in place into an
//! MSS-only SYN-ACK (MACs, addresses and ports swapped, fresh IP header, the TCP header
//! written by handshake's own `SynAck::write`, both checksums by its own sums, the tail
//! cut) and sent back. Its MSS and window are fixed: no listener settings, no checks of the
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
    checksum::{add_wide, ipv4_header_field, tcp_field},
    syn_ack::{Layout, MSS_ONLY_LEN, SynAck},
    tcp::IPPROTO_TCP,
};

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
    if IP_LEN == 20 {
        let ip = unsafe { &mut *ptr_at::<[u8; 20]>(ctx, ETH_LEN)? };
        let [len_high, len_low] = ((20 + MSS_ONLY_LEN) as u16).to_be_bytes();
        let words = [
            [0x45, 0, len_high, len_low],
            [0, 0, 0x40, 0],
            [TTL, IPPROTO_TCP, 0, 0],
        ];
        let sum = ipv4_header_field(addresses, words);
        let (client, server) = (
            [ip[12], ip[13], ip[14], ip[15]],
            [ip[16], ip[17], ip[18], ip[19]],
        );
        ip[0..4].copy_from_slice(&words[0]);
        ip[4..8].copy_from_slice(&words[1]);
        ip[8..10].copy_from_slice(&[TTL, IPPROTO_TCP]);
        ip[10..12].copy_from_slice(&sum);
        ip[12..16].copy_from_slice(&server);
        ip[16..20].copy_from_slice(&client);
    } else {
        // As eight-byte words: version to hop limit, then two per address.
        let ip = unsafe { &mut *ptr_at::<[u64; 5]>(ctx, ETH_LEN)? };
        let [len_high, len_low] = (MSS_ONLY_LEN as u16).to_be_bytes();
        let first = [0x60, 0, 0, 0, len_high, len_low, IPPROTO_TCP, TTL];
        *ip = [u64::from_ne_bytes(first), ip[3], ip[4], ip[1], ip[2]];
    }
    let tcp = unsafe { &mut *ptr_at::<[u8; MSS_ONLY_LEN]>(ctx, ETH_LEN + IP_LEN)? };
    header.write(tcp);
    let sum = tcp_field(addresses, MSS_ONLY_LEN, tcp);
    tcp[16..18].copy_from_slice(&sum);
    let eth = unsafe { &mut *ptr_at::<[[u8; 6]; 2]>(ctx, 0)? };
    *eth = [eth[1], eth[0]];
    Some(())
}
