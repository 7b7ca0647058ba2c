//! Writing the SYN-ACK's headers over the SYN's, in place and at constant offsets, once the
//! frame has its final length: the product's rewrite (syn_ack.rs) and the benchmark's
//! answer floor (handshake-bench-ebpf's cookie_answer.rs) both call these, so the floor
//! times the very writes handshake makes.

use aya_ebpf::programs::XdpContext;
use handshake_common::{
    checksum,
    syn_ack::{Layout, MSS_ONLY_LEN, SynAck, TIMESTAMPS_LEN, TIMESTAMPS_WSCALE_LEN},
    tcp::IPPROTO_TCP,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::ptr_at;

const DONT_FRAGMENT: u16 = 0x4000;

/// The frame is shorter than the header to be written.
pub struct NoRoom;

/// Only the MACs swap: VLAN tags and the EtherType stay as they came, so the answer goes
/// back on the same VLAN.
#[inline(always)]
pub fn swap_macs(ctx: &XdpContext) -> Result<(), NoRoom> {
    let eth = unsafe { &mut *ptr_at::<EthHdr>(ctx, 0).ok_or(NoRoom)? };
    core::mem::swap(&mut eth.src_addr, &mut eth.dst_addr);
    Ok(())
}

/// The IPv4 header rewritten in place: no options, ID 0 with DF set as Linux sends
/// SYN-ACKs (RFC 6864 4.1: the ID of an atomic datagram has no meaning), addresses
/// swapped, a fresh checksum from the words written and the addresses' sum.
#[inline(always)]
pub fn write_ipv4<const L2: usize>(
    ctx: &XdpContext,
    tcp_len: usize,
    tos: u8,
    ttl: u8,
    addresses: u64,
) -> Result<(), NoRoom> {
    let ip = unsafe { &mut *ptr_at::<[u8; Ipv4Hdr::LEN]>(ctx, L2).ok_or(NoRoom)? };
    let [len_high, len_low] = ((Ipv4Hdr::LEN + tcp_len) as u16).to_be_bytes();
    let [df_high, df_low] = DONT_FRAGMENT.to_be_bytes();
    let words = [
        [0x45, tos, len_high, len_low],
        [0, 0, df_high, df_low],
        [ttl, IPPROTO_TCP, 0, 0],
    ];
    let sum = checksum::ipv4_header_field(addresses, words);
    let client = u32::from_ne_bytes([ip[12], ip[13], ip[14], ip[15]]);
    let server = u32::from_ne_bytes([ip[16], ip[17], ip[18], ip[19]]);
    ip[0..4].copy_from_slice(&words[0]);
    ip[4..8].copy_from_slice(&words[1]);
    ip[8..10].copy_from_slice(&[ttl, IPPROTO_TCP]);
    ip[10..12].copy_from_slice(&sum);
    ip[12..16].copy_from_slice(&server.to_ne_bytes());
    ip[16..20].copy_from_slice(&client.to_ne_bytes());
    Ok(())
}

/// The IPv6 header rewritten in place: `first` holds version, traffic class and flow
/// label; addresses swapped.
#[inline(always)]
pub fn write_ipv6<const L2: usize>(
    ctx: &XdpContext,
    tcp_len: usize,
    first_word: [u8; 4],
    hop_limit: u8,
) -> Result<(), NoRoom> {
    // As eight-byte words: the first holds version to hop limit, then two per address.
    let ip = unsafe { &mut *ptr_at::<[u64; Ipv6Hdr::LEN / 8]>(ctx, L2).ok_or(NoRoom)? };
    let mut first = [0u8; 8];
    first[0..4].copy_from_slice(&first_word);
    first[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    first[6] = IPPROTO_TCP;
    first[7] = hop_limit;
    let client = [ip[1], ip[2]];
    *ip = [
        u64::from_ne_bytes(first),
        ip[3],
        ip[4],
        client[0],
        client[1],
    ];
    Ok(())
}

/// Writes the TCP header of `header`'s layout after the IP header and sums it there,
/// under a pseudo-header of the addresses, whose sum is `addresses`.
#[inline(always)]
pub fn write_tcp<const L2: usize, const IP_LEN: usize>(
    ctx: &XdpContext,
    header: &SynAck,
    addresses: u64,
) -> Result<(), NoRoom> {
    // One constant length per layout, so the verifier sees each write fit.
    match header.layout {
        Layout::MssOnly => write_tcp_of::<L2, IP_LEN, MSS_ONLY_LEN>(ctx, header, addresses),
        Layout::Timestamps => write_tcp_of::<L2, IP_LEN, TIMESTAMPS_LEN>(ctx, header, addresses),
        Layout::TimestampsWscale => {
            write_tcp_of::<L2, IP_LEN, TIMESTAMPS_WSCALE_LEN>(ctx, header, addresses)
        }
    }
}

#[inline(always)]
fn write_tcp_of<const L2: usize, const IP_LEN: usize, const N: usize>(
    ctx: &XdpContext,
    header: &SynAck,
    addresses: u64,
) -> Result<(), NoRoom> {
    let tcp = unsafe { &mut *ptr_at::<[u8; N]>(ctx, L2 + IP_LEN).ok_or(NoRoom)? };
    header.write(tcp);
    let sum = checksum::tcp_field(addresses, N, tcp);
    tcp[16..18].copy_from_slice(&sum);
    Ok(())
}
