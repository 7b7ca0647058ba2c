//! Frames for the microbenchmarks: Ethernet + IPv4/IPv6 + TCP (or UDP), checksums filled.

use handshake_common::checksum;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;

/// What Linux 6.x puts in a SYN: MSS 1460, SACK_PERM, TS, NOP, WS 7 (40-byte header).
pub const LINUX_SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7,
];

/// The only option of an MSS-only SYN-ACK: MSS 1460.
pub const MSS_OPTION: [u8; 4] = [2, 4, 0x05, 0xb4];

/// What Windows puts in a SYN: MSS 1460, NOP, WS 8, NOP, NOP, SACK_PERM; no timestamps.
pub const WINDOWS_SYN_OPTIONS: [u8; 12] = [2, 4, 0x05, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2];

pub struct Segment<'a> {
    pub source_port: u16,
    pub dest_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub options: &'a [u8],
}

fn tcp(segment: &Segment, src: &[u8], dst: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&segment.source_port.to_be_bytes());
    bytes.extend_from_slice(&segment.dest_port.to_be_bytes());
    bytes.extend_from_slice(&segment.seq.to_be_bytes());
    bytes.extend_from_slice(&segment.ack.to_be_bytes());
    bytes.push((((20 + segment.options.len()) / 4) as u8) << 4);
    bytes.push(segment.flags);
    bytes.extend_from_slice(&64240u16.to_be_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(segment.options);
    let sum = checksum::tcp(src, dst, &bytes);
    bytes[16..18].copy_from_slice(&sum.to_be_bytes());
    bytes
}

/// The destination MAC of every frame: the program is configured with it as its own.
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

fn ethernet(ether_type: [u8; 2]) -> Vec<u8> {
    let mut frame = [SERVER_MAC, CLIENT_MAC].concat();
    frame.extend_from_slice(&ether_type);
    frame
}

fn ipv4_header(src: [u8; 4], dst: [u8; 4], protocol: u8, payload_len: usize) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, protocol, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = checksum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip
}

pub fn tcp_v4(src: [u8; 4], dst: [u8; 4], segment: &Segment) -> Vec<u8> {
    let tcp = tcp(segment, &src, &dst);
    let mut frame = ethernet([0x08, 0x00]);
    frame.extend_from_slice(&ipv4_header(src, dst, 6, tcp.len()));
    frame.extend_from_slice(&tcp);
    frame
}

pub fn tcp_v6(src: [u8; 16], dst: [u8; 16], segment: &Segment) -> Vec<u8> {
    let tcp = tcp(segment, &src, &dst);
    let mut frame = ethernet([0x86, 0xdd]);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[6, 64]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&tcp);
    frame
}

/// A DNS-sized UDP datagram (its checksum left zero, which IPv4 allows).
pub fn udp_v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut udp = vec![0x30, 0x39, 0, 53, 0, 40, 0, 0];
    udp.extend_from_slice(&[0u8; 32]);
    let mut frame = ethernet([0x08, 0x00]);
    frame.extend_from_slice(&ipv4_header(src, dst, 17, udp.len()));
    frame.extend_from_slice(&udp);
    frame
}
