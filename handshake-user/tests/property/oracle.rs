//! What the program must decide for a frame, written from the README's rules (and the
//! kernel's, which they cite) rather than from the program's code.

use std::net::IpAddr;

use handshake::local_table::{self, LocalTable};
use handshake_common::counters::Counter;

use crate::common::{
    bed::{NO_LISTENER, PROTECTED},
    packet::{SERVER_MAC, checksum},
};

pub struct Segment {
    pub l2: usize,
    pub src: Vec<u8>,
    pub dst: Vec<u8>,
    pub source_port: u16,
    pub dest_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub header_len: usize,
    pub payload_len: usize,
    /// Where the IP header says the segment ends.
    pub segment_end: usize,
    pub checksums_ok: bool,
    /// The IPv4 header carries options.
    pub ip_options: bool,
    /// The TCP options.
    pub options: Vec<u8>,
}

pub enum Parsed {
    Tcp(Segment),
    NotTcp,
    Malformed,
}

fn be16(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]))
}

pub fn parse(frame: &[u8]) -> Parsed {
    // Up to two 802.1Q/802.1ad tags; a third makes the frame the kernel's.
    let mut l2 = 14;
    loop {
        match frame.get(l2 - 2..l2) {
            None => return Parsed::Malformed,
            Some([0x81, 0x00] | [0x88, 0xa8]) if l2 == 22 => return Parsed::NotTcp,
            Some([0x81, 0x00] | [0x88, 0xa8]) => l2 += 4,
            Some(_) => break,
        }
    }
    match &frame[l2 - 2..l2] {
        [0x08, 0x00] => ipv4(frame, l2),
        [0x86, 0xdd] => ipv6(frame, l2),
        _ => Parsed::NotTcp,
    }
}

fn ipv4(frame: &[u8], l2: usize) -> Parsed {
    if frame.len() < l2 + 20 {
        return Parsed::Malformed;
    }
    let ihl = usize::from(frame[l2] & 0xf) * 4;
    let total = be16(frame, l2 + 2);
    if frame[l2] >> 4 != 4 || ihl < 20 || total < ihl || l2 + total > frame.len() {
        return Parsed::Malformed;
    }
    let fragment = be16(frame, l2 + 6) & 0x3fff != 0;
    if fragment || frame[l2 + 9] != 6 {
        return Parsed::NotTcp;
    }
    let header_ok = checksum(&frame[l2..l2 + ihl]) == 0;
    let addresses = frame[l2 + 12..l2 + 20].to_vec();
    let parsed = tcp(frame, l2, l2 + ihl, total - ihl, addresses, header_ok);
    match parsed {
        Parsed::Tcp(segment) => Parsed::Tcp(Segment {
            ip_options: ihl > 20,
            ..segment
        }),
        other => other,
    }
}

fn ipv6(frame: &[u8], l2: usize) -> Parsed {
    if frame.len() < l2 + 40 {
        return Parsed::Malformed;
    }
    if frame[l2 + 6] != 6 {
        return Parsed::NotTcp;
    }
    let payload = be16(frame, l2 + 4);
    if frame[l2] >> 4 != 6 || l2 + 40 + payload > frame.len() {
        return Parsed::Malformed;
    }
    let addresses = frame[l2 + 8..l2 + 40].to_vec();
    tcp(frame, l2, l2 + 40, payload, addresses, true)
}

fn tcp(
    frame: &[u8],
    l2: usize,
    at: usize,
    len: usize,
    addresses: Vec<u8>,
    header_ok: bool,
) -> Parsed {
    if frame.len() < at + 20 {
        return Parsed::Malformed;
    }
    let header_len = usize::from(frame[at + 12] >> 4) * 4;
    if header_len < 20 || header_len > len {
        return Parsed::Malformed;
    }
    let mut summed = addresses.clone();
    summed.extend_from_slice(&[0, 6]);
    summed.extend_from_slice(&(len as u16).to_be_bytes());
    summed.extend_from_slice(&frame[at..at + len]);
    let (src, dst) = addresses.split_at(addresses.len() / 2);
    let word = |offset: usize| u32::from_be_bytes(frame[offset..offset + 4].try_into().unwrap());
    Parsed::Tcp(Segment {
        l2,
        src: src.to_vec(),
        dst: dst.to_vec(),
        source_port: be16(frame, at) as u16,
        dest_port: be16(frame, at + 2) as u16,
        seq: word(at + 4),
        ack: word(at + 8),
        flags: frame[at + 13],
        header_len,
        payload_len: len - header_len,
        segment_end: at + len,
        checksums_ok: header_ok && checksum(&summed) == 0,
        ip_options: false,
        options: frame[at + 20..at + header_len].to_vec(),
    })
}

/// Addresses no SYN-ACK may go to or come from (the kernel's martians, see README).
fn martian(src: &[u8], dst: &[u8]) -> bool {
    if src == dst {
        return true;
    }
    if src.len() == 4 {
        let bad = |a: &[u8]| matches!(a[0], 0 | 127 | 224..=239) || a == [255; 4];
        return bad(src) || bad(dst);
    }
    let bad = |a: &[u8]| {
        a[0] == 0xff || a.iter().all(|&b| b == 0) || (a[..15].iter().all(|&b| b == 0) && a[15] == 1)
    };
    let mapped = src[..10].iter().all(|&b| b == 0) && src[10..12] == [0xff, 0xff];
    bad(src) || bad(dst) || mapped
}

/// Whether the kernel's option walk (`tcp_parse_options`: EOL ends it, NOP is one byte,
/// a size below 2 or past the end stops it) meets TCP-MD5 (19), TCP-AO (29) or MPTCP (30).
fn kernel_only_option(options: &[u8]) -> bool {
    let mut at = 0;
    while at < options.len() {
        match options[at] {
            0 => return false,
            1 => at += 1,
            kind => {
                let Some(&size) = options.get(at + 1) else {
                    return false;
                };
                let size = usize::from(size);
                if size < 2 || at + size > options.len() {
                    return false;
                }
                if matches!(kind, 19 | 29 | 30) {
                    return true;
                }
                at += size;
            }
        }
    }
    false
}

/// The one counter `frame` must move, in a namespace with a listener on PROTECTED,
/// PROTECTED and NO_LISTENER protected, `tcp_syncookies=2`, and `local` its local
/// routing table.
pub fn expect(frame: &[u8], local: &LocalTable) -> Counter {
    let segment = match parse(frame) {
        Parsed::Tcp(segment) => segment,
        Parsed::NotTcp => return Counter::PassedNotTcp,
        Parsed::Malformed => return Counter::Malformed,
    };
    if segment.dest_port != PROTECTED && segment.dest_port != NO_LISTENER {
        return Counter::PassedUnprotected;
    }
    let listener = segment.dest_port == PROTECTED;
    match segment.flags & 0x17 {
        0x02 => {
            if frame[0] & 1 != 0 || segment.source_port == 0 || martian(&segment.src, &segment.dst)
            {
                Counter::SynDroppedInvalid
            } else if !this_host(frame, &segment, local) {
                Counter::SynPassedNotForHost
            } else if segment.ip_options {
                Counter::SynPassedKernelOnly
            } else if !listener {
                Counter::SynPassedNoListener
            } else if !segment.checksums_ok {
                Counter::SynPassedBadChecksum
            } else if segment.segment_end - segment.header_len > 1536 {
                Counter::SynPassedError
            } else if kernel_only_option(&segment.options) {
                Counter::SynPassedKernelOnly
            } else {
                Counter::SynAckSent
            }
        }
        // Every ACK here is forged (the bed counts every CPU as in a flood): dropped when it
        // is this host's, passed when it is a neighbour's.
        flags if flags & 0x16 == 0x10 && listener && this_host(frame, &segment, local) => {
            Counter::AckDroppedForged
        }
        flags if flags & 0x16 == 0x10 => Counter::AckPassedOther,
        _ => Counter::PassedOtherTcp,
    }
}

/// Addressed to the server's MAC and to an address its routing delivers locally.
fn this_host(frame: &[u8], segment: &Segment, local: &LocalTable) -> bool {
    let dst = match segment.dst.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(&segment.dst[..]).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(&segment.dst[..]).unwrap()),
    };
    frame[..6] == SERVER_MAC && local_table::is_local(local, dst)
}
