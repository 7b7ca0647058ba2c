//! Turning the SYN into the cookie SYN-ACK in place: MACs, addresses and ports swapped,
//! seq = cookie, ack = client seq + 1, fresh IP and TCP headers and checksums.
//!
//! Every field is read from the SYN first; then the frame is cut to Ethernet + IP + TCP
//! and the headers are written straight into the packet at constant offsets and summed
//! there (the library's syn_ack_headers.rs, which the benchmark's answer floor calls too).
//! No buffer on the stack: a zeroed or copied array becomes a call to `memset` or
//! `memcpy` (a BPF-to-BPF call, ~40 ns on hosts with return-thunk mitigations), and a
//! stack slot that only some paths write is refused by the verifier before Linux 6.8.
//! IPv4 options and any SYN payload are not echoed: the kernel's own SYN-ACK carries
//! neither.

use aya_ebpf::{
    helpers::generated::{bpf_check_mtu, bpf_ktime_get_ns, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use handshake_common::{
    config::Config,
    listener as kernel,
    syn_ack::{self, Layout, SynAck},
    syn_options::SynOptions,
    tcp::{CWR, ECE},
};
use handshake_ebpf::syn_ack_headers::{NoRoom, swap_macs, write_ipv4, write_ipv6, write_tcp};
use network_types::{
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

use crate::{
    calls::{self, Call},
    headers::{Family, Segment, ptr_at},
    listener_settings::Settings,
    syn::Cookie,
};

/// What the SYN-ACK is made of, besides the SYN itself and the configuration.
pub struct Answer<'a> {
    pub settings: &'a Settings,
    pub syn: &'a SynOptions,
    pub cookie: &'a Cookie,
    /// The sum of the SYN's addresses (`checksum::verify`), for both checksums.
    pub addresses: u64,
}

#[inline(always)]
pub fn rewrite<const L2: usize>(
    ctx: &XdpContext,
    segment: &Segment,
    config: &Config,
    answer: &Answer,
) -> Result<(), NoRoom> {
    let (listener, net) = (&answer.settings.listener, &answer.settings.net);
    let (syn, addresses) = (answer.syn, answer.addresses);
    let th = unsafe { &*ptr_at::<TcpHdr>(ctx, segment.tcp_offset).ok_or(NoRoom)? };
    let route_mss = if config.mss_from_mtu != 0 {
        let mtu = device_mtu(ctx).ok_or(NoRoom)?;
        match segment.family {
            Family::Ipv4 => kernel::advmss_ipv4(mtu),
            Family::Ipv6 => kernel::advmss_ipv6(mtu),
        }
    } else {
        match segment.family {
            Family::Ipv4 => config.mss_ipv4,
            Family::Ipv6 => config.mss_ipv6,
        }
    };
    let mss = kernel::mss(listener, route_mss);
    let layout = syn_ack::layout(net, syn, segment.tcp_header_len);
    let (window, wscale) = kernel::initial_window(
        listener,
        net,
        config.rmem_max,
        mss,
        layout != Layout::MssOnly,
        layout == Layout::TimestampsWscale,
    );
    let mut header = SynAck {
        source_port: u16::from_be_bytes(th.dest),
        dest_port: u16::from_be_bytes(th.source),
        cookie: answer.cookie.cookie,
        client_seq: u32::from_be_bytes(th.seq),
        window,
        mss,
        layout,
        sack_ok: false,
        tsval: 0,
        tsecr: 0,
        wscale: 0,
        ece: false,
    };
    // The clock is read only when TSval goes out.
    if layout != Layout::MssOnly {
        let ecn = ecn_requested::<L2>(ctx, segment).ok_or(NoRoom)?;
        calls::count(Call::Helper, 1);
        let now_ms = unsafe { bpf_ktime_get_ns() } / 1_000_000;
        syn_ack::set_timestamps(&mut header, net, syn, ecn, now_ms, wscale);
    }
    // The SYN's own first IP header word: its TOS or traffic class (for
    // `tcp_reflect_tos`) and IPv6 flow label.
    let first = unsafe { *ptr_at::<[u8; 4]>(ctx, L2).ok_or(NoRoom)? };
    match segment.family {
        Family::Ipv4 => {
            let tos = kernel::tos(listener.tos, net, first[1]);
            resize::<L2, { Ipv4Hdr::LEN }>(ctx, &header)?;
            write_ipv4::<L2>(
                ctx,
                header.header_len(),
                tos,
                kernel::ttl(listener, net),
                addresses,
            )?;
            write_tcp::<L2, { Ipv4Hdr::LEN }>(ctx, &header, addresses)
        }
        Family::Ipv6 => {
            let syn_tclass = (first[0] << 4) | (first[1] >> 4);
            let tclass = kernel::tos(listener.tclass, net, syn_tclass);
            // `tcp_v6_send_synack` echoes the SYN's label for a listener that reflects
            // them; otherwise the kernel's label is a hash with a secret (README).
            let label = if listener.reflect_flow_label {
                [first[1] & 0x0f, first[2], first[3]]
            } else {
                [0; 3]
            };
            let first = [
                0x60 | (tclass >> 4),
                (tclass << 4) | label[0],
                label[1],
                label[2],
            ];
            let hop_limit = kernel::hop_limit(listener, config.hop_limit);
            resize::<L2, { Ipv6Hdr::LEN }>(ctx, &header)?;
            write_ipv6::<L2>(ctx, header.header_len(), first, hop_limit)?;
            write_tcp::<L2, { Ipv6Hdr::LEN }>(ctx, &header, addresses)
        }
    }?;
    swap_macs(ctx)
}

/// The MTU of the interface the SYN came in on, now (`bpf_check_mtu` sets it whatever it
/// answers): an MTU changed while attached changes the MSS as it does the kernel's.
#[inline(always)]
fn device_mtu(ctx: &XdpContext) -> Option<u32> {
    let mut mtu: u32 = 0;
    calls::count(Call::Helper, 1);
    let result = unsafe { bpf_check_mtu(ctx.ctx as *mut _, 0, &mut mtu, 0, 0) };
    (result >= 0 && mtu != 0).then_some(mtu)
}

/// Whether the SYN asks for ECN the way `tcp_ecn_create_request` accepts: ECE and CWR
/// set, and either a not-ECT IP header or reserved TCP bits set.
#[inline(always)]
fn ecn_requested<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> Option<bool> {
    if segment.flags & (ECE | CWR) != ECE | CWR {
        return Some(false);
    }
    // IPv4's TOS byte, or the second byte of IPv6's traffic class (its low nibble).
    let [_, second] = unsafe { *ptr_at::<[u8; 2]>(ctx, L2)? };
    let ecn_field = match segment.family {
        Family::Ipv4 => second & 0b11,
        Family::Ipv6 => (second >> 4) & 0b11,
    };
    let reserved = unsafe { *ptr_at::<u8>(ctx, segment.tcp_offset + 12)? } & 0x0f;
    Some(ecn_field == 0 || reserved != 0)
}

/// Cuts (or, for an option-less SYN, grows by 4 bytes) the frame to exactly the SYN-ACK.
/// The headers stay where they are: the tail moves.
#[inline(always)]
fn resize<const L2: usize, const IP_LEN: usize>(
    ctx: &XdpContext,
    header: &SynAck,
) -> Result<(), NoRoom> {
    let frame_len = ctx.data_end() - ctx.data();
    let delta = (L2 + IP_LEN + header.header_len()) as i32 - frame_len as i32;
    if delta == 0 {
        return Ok(());
    }
    calls::count(Call::Helper, 1);
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Err(NoRoom);
    }
    Ok(())
}
