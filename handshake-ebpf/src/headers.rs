//! Finding the TCP segment: Ethernet (up to two VLAN tags are counted here and lifted out
//! by vlan.rs before the rest runs), then IPv4 (any IHL) or IPv6 (no extension headers),
//! then TCP, with every length checked against the frame and against the IP header.
//!
//! The link-layer length is a const generic (`L2`, always 14 since vlan.rs lifts the tags)
//! rather than a variable: every later access to the IP header, and the SYN-ACK's
//! rewrite, stays at a constant offset the verifier can check.

use core::ffi::c_void;

use aya_ebpf::programs::XdpContext;
pub use handshake_ebpf::ptr_at;
use network_types::{
    ip::{IpProto, Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

/// Where the addresses start in each IP header: source, then destination.
pub const IPV4_ADDRS: usize = 12;
pub const IPV6_ADDRS: usize = 8;

/// -EINVAL, which the helper wrappers return when the verifier-visible bounds fail.
pub const EINVAL: i64 = -22;

/// The fixed part of the IP header and its length, as the cookie helpers take it (they
/// read only the addresses, so IPv4 options need not be covered).
#[inline(always)]
pub fn ip_header<const L2: usize>(ctx: &XdpContext, family: Family) -> Option<(*mut c_void, u32)> {
    match family {
        Family::Ipv4 => Some((
            ptr_at::<Ipv4Hdr>(ctx, L2)? as *mut c_void,
            Ipv4Hdr::LEN as u32,
        )),
        Family::Ipv6 => Some((
            ptr_at::<Ipv6Hdr>(ctx, L2)? as *mut c_void,
            Ipv6Hdr::LEN as u32,
        )),
    }
}

/// An IPv6 address as four words, read one word at a time (a 16-byte array copy would be
/// a `memmove` call, a BPF-to-BPF call).
#[inline(always)]
pub fn words(address: &[u8; 16]) -> [u32; 4] {
    let word =
        |i: usize| u32::from_ne_bytes([address[i], address[i + 1], address[i + 2], address[i + 3]]);
    [word(0), word(4), word(8), word(12)]
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// What the decision needs of a TCP segment; ports and numbers in host order.
pub struct Segment {
    pub family: Family,
    /// Offset of the TCP header: after the IPv4 header and its options, or the IPv6 header.
    pub tcp_offset: usize,
    /// The TCP header with options: the data offset times four, 20..=60.
    pub tcp_header_len: usize,
    /// What the IP header says the TCP segment spans (header, options and payload); the
    /// frame may hold more (Ethernet padding).
    pub segment_len: usize,
    pub flags: u8,
    pub dest_port: u16,
}

pub enum Parsed {
    Tcp(Segment),
    NotTcp,
    Malformed,
}

/// The link layer: how many VLAN tags precede the IP header.
pub enum Link {
    /// The IP header starts after this many tags (0, 1 or 2).
    Tags(usize),
    /// Three or more tags: the kernel's to judge.
    Other,
    Truncated,
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// 802.1Q (C-tag) and 802.1ad (S-tag) TPIDs. Like the kernel's `eth_type_vlan`, either is
/// accepted at either position: old QinQ gear sends 0x8100 twice.
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
pub const VLAN_TAG_LEN: usize = 4;
/// Where the EtherType is read: after the two MAC addresses.
const ETHER_TYPE_OFFSET: usize = 12;

#[inline(always)]
pub fn link(ctx: &XdpContext) -> Link {
    let mut offset = ETHER_TYPE_OFFSET;
    // Each tag is four bytes: its TCI, then the next EtherType.
    for tags in 0..3 {
        let Some(ether_type) = ptr_at::<[u8; 2]>(ctx, offset) else {
            return Link::Truncated;
        };
        let ether_type = u16::from_be_bytes(unsafe { *ether_type });
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            return Link::Tags(tags);
        }
        offset += VLAN_TAG_LEN;
    }
    Link::Other
}

/// Parses from the innermost EtherType, at `L2 - 2`, on.
#[inline(always)]
pub fn parse<const L2: usize>(ctx: &XdpContext) -> Parsed {
    let Some(ether_type) = ptr_at::<[u8; 2]>(ctx, L2 - 2) else {
        return Parsed::Malformed;
    };
    let frame_len = ctx.data_end() - ctx.data();
    match u16::from_be_bytes(unsafe { *ether_type }) {
        ETH_P_IP => ipv4::<L2>(ctx, frame_len),
        ETH_P_IPV6 => ipv6::<L2>(ctx, frame_len),
        _ => Parsed::NotTcp,
    }
}

#[inline(always)]
fn ipv4<const L2: usize>(ctx: &XdpContext, frame_len: usize) -> Parsed {
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, L2) else {
        return Parsed::Malformed;
    };
    let ip = unsafe { &*ip };
    let header_len = usize::from(ip.ihl());
    let total_len = usize::from(ip.tot_len());
    if ip.version() != 4
        || header_len < Ipv4Hdr::LEN
        || total_len < header_len
        || L2 + total_len > frame_len
    {
        return Parsed::Malformed;
    }
    // A fragment's TCP header may be missing or split; the kernel reassembles, we stay out.
    const MORE_FRAGMENTS: u8 = 0b001;
    if ip.frag_flags() & MORE_FRAGMENTS != 0 || ip.frag_offset() != 0 {
        return Parsed::NotTcp;
    }
    if ip.proto != IpProto::Tcp as u8 {
        return Parsed::NotTcp;
    }
    tcp(ctx, Family::Ipv4, L2 + header_len, total_len - header_len)
}

#[inline(always)]
fn ipv6<const L2: usize>(ctx: &XdpContext, frame_len: usize) -> Parsed {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, L2) else {
        return Parsed::Malformed;
    };
    let ip = unsafe { &*ip };
    // Extension headers would have to be walked and echoed; the kernel handles those SYNs.
    if ip.next_hdr != IpProto::Tcp as u8 {
        return Parsed::NotTcp;
    }
    let payload_len = usize::from(ip.payload_len());
    if ip.version() != 6 || L2 + Ipv6Hdr::LEN + payload_len > frame_len {
        return Parsed::Malformed;
    }
    tcp(ctx, Family::Ipv6, L2 + Ipv6Hdr::LEN, payload_len)
}

/// `segment_len` is what the IP header says the TCP segment spans.
#[inline(always)]
fn tcp(ctx: &XdpContext, family: Family, tcp_offset: usize, segment_len: usize) -> Parsed {
    let Some(th) = ptr_at::<TcpHdr>(ctx, tcp_offset) else {
        return Parsed::Malformed;
    };
    let th = unsafe { &*th };
    let tcp_header_len = usize::from(th.doff()) * 4;
    // tcp_v4_rcv: a data offset below 5 is a bad packet; one past the segment cannot be.
    if tcp_header_len < TcpHdr::LEN || tcp_header_len > segment_len {
        return Parsed::Malformed;
    }
    // Byte 13 of the TCP header holds CWR ECE URG ACK PSH RST SYN FIN.
    let flags = unsafe { *(th as *const TcpHdr as *const u8).add(13) };
    Parsed::Tcp(Segment {
        family,
        tcp_offset,
        tcp_header_len,
        segment_len,
        flags,
        dest_port: u16::from_be_bytes(th.dest),
    })
}
