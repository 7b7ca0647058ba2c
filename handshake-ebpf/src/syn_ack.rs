//! Turning the SYN into the cookie SYN-ACK in place: MACs, addresses and ports swapped,
//! seq = cookie, ack = client seq + 1, fresh IP and TCP headers and checksums.
//!
//! The headers are built on the stack (handshake-common's `syn_ack`, the same code the
//! host tests check), then the frame is cut to Ethernet + IP + TCP and they are copied in
//! at constant offsets. IPv4 options and any SYN payload are not echoed: the kernel's own
//! SYN-ACK carries neither.

use aya_ebpf::{
    helpers::generated::{bpf_ktime_get_ns, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use handshake_common::{
    checksum,
    syn_ack::{self, MAX_LEN, MSS_ONLY_LEN, SynAck, TIMESTAMPS_LEN, TIMESTAMPS_WSCALE_LEN},
    syn_options::SynOptions,
    tcp::IPPROTO_TCP,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

use crate::{
    headers::{Family, Segment, ptr_at},
    maps,
    syn::Cookie,
    syn_options,
};

/// RFC 1122 3.2.1.7 recommends 64; it is Linux's `ip_default_ttl` and hop limit default.
const TTL: u8 = 64;
const DONT_FRAGMENT: u16 = 0x4000;
/// Destination and source MAC addresses.
const MACS_LEN: usize = 12;

pub struct NoRoom;

/// Not inlined: its headers on the stack get their own frame, apart from the checksum
/// callback's (the verifier sums the frames of a call chain against its 512-byte limit).
#[inline(never)]
pub fn rewrite<const L2: usize>(
    ctx: &XdpContext,
    segment: &Segment,
    cookie: &Cookie,
) -> Result<(), NoRoom> {
    let config = maps::config().ok_or(NoRoom)?;
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(NoRoom)?;
    let th = ptr_at::<TcpHdr>(ctx, segment.tcp_offset).ok_or(NoRoom)?;
    let (eth, th) = unsafe { (&*eth, &*th) };

    // Only the MACs swap: VLAN tags and the EtherType stay as they came, so the answer
    // goes back on the same VLAN.
    let mut reply_macs = [0u8; MACS_LEN];
    reply_macs[0..6].copy_from_slice(&eth.src_addr);
    reply_macs[6..12].copy_from_slice(&eth.dst_addr);

    let syn_options = if config.timestamps() {
        syn_options::parse(ctx, segment.tcp_offset, segment.tcp_header_len)
    } else {
        SynOptions::default()
    };
    let now_ms = unsafe { bpf_ktime_get_ns() } / 1_000_000;
    let mut header = SynAck {
        source_port: u16::from_be_bytes(th.dest),
        dest_port: u16::from_be_bytes(th.source),
        cookie: cookie.cookie,
        client_seq: u32::from_be_bytes(th.seq),
        window: syn_ack::window(cookie.mss),
        mss: config.mss_ipv4,
        timestamps: syn_ack::timestamps(config, &syn_options, segment.tcp_header_len, now_ms),
    };
    match segment.family {
        Family::Ipv4 => {
            let ip = unsafe { &*ptr_at::<Ipv4Hdr>(ctx, L2).ok_or(NoRoom)? };
            answer::<L2, 4, { Ipv4Hdr::LEN }>(
                ctx,
                &reply_macs,
                &header,
                ip.dst_addr,
                ip.src_addr,
                ipv4_header,
            )
        }
        Family::Ipv6 => {
            let ip = unsafe { &*ptr_at::<Ipv6Hdr>(ctx, L2).ok_or(NoRoom)? };
            header.mss = config.mss_ipv6;
            answer::<L2, 16, { Ipv6Hdr::LEN }>(
                ctx,
                &reply_macs,
                &header,
                ip.dst_addr,
                ip.src_addr,
                ipv6_header,
            )
        }
    }
}

/// Builds the TCP header from `header` with its checksum, the IP header from
/// `ip_header`, and stores both after the MACs.
#[inline(always)]
fn answer<const L2: usize, const ADDR_LEN: usize, const IP_LEN: usize>(
    ctx: &XdpContext,
    macs: &[u8; MACS_LEN],
    header: &SynAck,
    src: [u8; ADDR_LEN],
    dst: [u8; ADDR_LEN],
    ip_header: fn([u8; ADDR_LEN], [u8; ADDR_LEN], usize) -> [u8; IP_LEN],
) -> Result<(), NoRoom> {
    let mut tcp = [0u8; MAX_LEN];
    header.write(&mut tcp);
    let tcp_len = header.header_len();
    fill_tcp_checksum(&src, &dst, tcp_len, &mut tcp);
    store::<L2, IP_LEN>(ctx, macs, &ip_header(src, dst, tcp_len), &tcp, tcp_len)
}

/// Not inlined, so that `tcp` stays in memory: inlined, LLVM split the array into forty
/// scalars and spilled them, and the frame passed the verifier's stack limit. (It takes
/// no `&SynAck`: the BTF of a Rust enum inside it, a union member at a non-zero offset,
/// is refused by the kernel, which then loads the program without BTF and so without
/// the function info `bpf_loop` callbacks need.)
#[inline(never)]
fn fill_tcp_checksum<const ADDR_LEN: usize>(
    src: &[u8; ADDR_LEN],
    dst: &[u8; ADDR_LEN],
    tcp_len: usize,
    tcp: &mut [u8; MAX_LEN],
) {
    let sum = checksum::tcp_field(src, dst, tcp_len, tcp);
    tcp[16..18].copy_from_slice(&sum);
}

#[inline(always)]
fn ipv4_header(src: [u8; 4], dst: [u8; 4], tcp_len: usize) -> [u8; Ipv4Hdr::LEN] {
    let mut ip = [0u8; Ipv4Hdr::LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((Ipv4Hdr::LEN + tcp_len) as u16).to_be_bytes());
    // ID 0 with DF set, as Linux sends SYN-ACKs (RFC 6864 4.1: the ID of an atomic
    // datagram has no meaning).
    ip[6..8].copy_from_slice(&DONT_FRAGMENT.to_be_bytes());
    ip[8] = TTL;
    ip[9] = IPPROTO_TCP;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = checksum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip
}

#[inline(always)]
fn ipv6_header(src: [u8; 16], dst: [u8; 16], tcp_len: usize) -> [u8; Ipv6Hdr::LEN] {
    let mut ip = [0u8; Ipv6Hdr::LEN];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    ip[6] = IPPROTO_TCP;
    ip[7] = TTL;
    ip[8..24].copy_from_slice(&src);
    ip[24..40].copy_from_slice(&dst);
    ip
}

/// Cuts (or, for an option-less SYN, grows by 4 bytes) the frame to exactly the SYN-ACK
/// and copies the headers in, each at a constant offset with a constant length.
#[inline(always)]
fn store<const L2: usize, const IP_LEN: usize>(
    ctx: &XdpContext,
    macs: &[u8; MACS_LEN],
    ip: &[u8; IP_LEN],
    tcp: &[u8; MAX_LEN],
    tcp_len: usize,
) -> Result<(), NoRoom> {
    let frame_len = ctx.data_end() - ctx.data();
    let delta = (L2 + IP_LEN + tcp_len) as i32 - frame_len as i32;
    if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
        return Err(NoRoom);
    }
    copy_to(ctx, 0, macs)?;
    copy_to(ctx, L2, ip)?;
    let tcp_offset = L2 + IP_LEN;
    // One constant length per layout, so the verifier sees each copy fit.
    match tcp_len {
        MSS_ONLY_LEN => copy_to(
            ctx,
            tcp_offset,
            tcp.first_chunk::<MSS_ONLY_LEN>().ok_or(NoRoom)?,
        ),
        TIMESTAMPS_LEN => copy_to(
            ctx,
            tcp_offset,
            tcp.first_chunk::<TIMESTAMPS_LEN>().ok_or(NoRoom)?,
        ),
        _ => copy_to::<TIMESTAMPS_WSCALE_LEN>(ctx, tcp_offset, tcp),
    }
}

#[inline(always)]
fn copy_to<const LEN: usize>(
    ctx: &XdpContext,
    offset: usize,
    bytes: &[u8; LEN],
) -> Result<(), NoRoom> {
    let out = ptr_at::<[u8; LEN]>(ctx, offset).ok_or(NoRoom)?;
    unsafe { *out = *bytes };
    Ok(())
}
