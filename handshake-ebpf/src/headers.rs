//! Finding the TCP segment: Ethernet, then IPv4 (any IHL) or IPv6 (no extension headers),
//! then TCP, with every length checked against the frame and against the IP header.

use aya_ebpf::programs::XdpContext;
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{IpProto, Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

/// A pointer to a `T` at `offset` in the frame, once the verifier can see it fits.
///
/// `data_end` is read volatile so that LLVM keeps every check: it would otherwise drop a
/// check that a later, larger one implies, but the verifier tracks bounds per pointer and
/// would then reject the access through the unchecked one.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = unsafe { core::ptr::read_volatile(&(*ctx.ctx).data_end) } as usize;
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
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
    pub flags: u8,
    pub dest_port: u16,
}

pub enum Parsed {
    Tcp(Segment),
    NotTcp,
    Malformed,
}

pub const IP_OFFSET: usize = EthHdr::LEN;

#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Parsed {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Parsed::Malformed;
    };
    let frame_len = ctx.data_end() - ctx.data();
    match unsafe { (*eth).ether_type() } {
        Ok(EtherType::Ipv4) => ipv4(ctx, frame_len),
        Ok(EtherType::Ipv6) => ipv6(ctx, frame_len),
        _ => Parsed::NotTcp,
    }
}

#[inline(always)]
fn ipv4(ctx: &XdpContext, frame_len: usize) -> Parsed {
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, IP_OFFSET) else {
        return Parsed::Malformed;
    };
    let ip = unsafe { &*ip };
    let header_len = usize::from(ip.ihl());
    let total_len = usize::from(ip.tot_len());
    if ip.version() != 4
        || header_len < Ipv4Hdr::LEN
        || total_len < header_len
        || IP_OFFSET + total_len > frame_len
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
    tcp(
        ctx,
        Family::Ipv4,
        IP_OFFSET + header_len,
        total_len - header_len,
    )
}

#[inline(always)]
fn ipv6(ctx: &XdpContext, frame_len: usize) -> Parsed {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, IP_OFFSET) else {
        return Parsed::Malformed;
    };
    let ip = unsafe { &*ip };
    // Extension headers would have to be walked and echoed; the kernel handles those SYNs.
    if ip.next_hdr != IpProto::Tcp as u8 {
        return Parsed::NotTcp;
    }
    let payload_len = usize::from(ip.payload_len());
    if ip.version() != 6 || IP_OFFSET + Ipv6Hdr::LEN + payload_len > frame_len {
        return Parsed::Malformed;
    }
    tcp(ctx, Family::Ipv6, IP_OFFSET + Ipv6Hdr::LEN, payload_len)
}

/// `segment_len` is what the IP header says the TCP segment spans.
#[inline(always)]
fn tcp(ctx: &XdpContext, family: Family, tcp_offset: usize, segment_len: usize) -> Parsed {
    let Some(th) = ptr_at::<TcpHdr>(ctx, tcp_offset) else {
        return Parsed::Malformed;
    };
    let th = unsafe { &*th };
    let tcp_header_len = usize::from(th.doff()) * 4;
    if tcp_header_len < TcpHdr::LEN || tcp_header_len > segment_len {
        return Parsed::Malformed;
    }
    // Byte 13 of the TCP header holds CWR ECE URG ACK PSH RST SYN FIN.
    let flags = unsafe { *(th as *const TcpHdr as *const u8).add(13) };
    Parsed::Tcp(Segment {
        family,
        tcp_offset,
        tcp_header_len,
        flags,
        dest_port: u16::from_be_bytes(th.dest),
    })
}
