//! The flood generator's SYNs: what the benchmark's XDP generator (handshake-bench-ebpf's
//! `handshake-flood` object) and the lab that drives it must agree on.
//!
//! The lab hands the program one template frame (Ethernet, IPv4, TCP with an MSS option)
//! and the partial checksums of its constant words. Per packet the program copies the
//! template, stamps a spoofed source address, source port and sequence number and finishes
//! both checksums from those sums: a handful of additions, no pass over the frame. The
//! same `stamp` runs here in the host tests and in the program.

use crate::checksum::{finish, sum_words};

/// Calls each of the benchmark's `helper_calls`, `subprogram_calls` and `clock_reads` makes per
/// run (handshake-bench-ebpf's `call_cost.rs`): the time over XDP_PASS divided by this is
/// what one call costs on the host.
pub const CALL_COST_CALLS: u32 = 32;

/// Spoofed sources come only from 198.18.128.0/17, the upper half of the lab's
/// benchmarking range (RFC 2544), so no answer can be meant for a real host.
pub const SPOOF_NET: u32 = 0xc612_8000;
pub const SPOOF_HOST_MASK: u32 = 0x7fff;

/// Ethernet 14 + IPv4 20 + TCP 20 + MSS option 4.
pub const FRAME_LEN: usize = 58;
const IP_CHECKSUM: usize = 24;
const IP_SRC: usize = 26;
const IP_DST: usize = 30;
const TCP_SRC_PORT: usize = 34;
const TCP_DST_PORT: usize = 36;
const TCP_SEQ: usize = 38;
const TCP_CHECKSUM: usize = 50;
const TCP_LEN: u16 = 24;

/// Slots of the `FLOOD_STATE` array map.
pub const STATE_SENT: u32 = 0;
pub const STATE_NEXT_DUE_NS: u32 = 1;

/// When pacing, the schedule never lags the clock by more than this: after a stall the
/// generator resumes at its rate instead of catching up in a burst.
pub const MAX_LAG_NS: u64 = 1_000_000;

/// The single entry of the `FLOOD_CONFIG` array map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodConfig {
    /// Most SYNs this run may send in total; every frame after that is dropped.
    pub limit: u64,
    /// Nanoseconds between two SYNs, 0 for as fast as possible. The program paces itself:
    /// BPF_PROG_TEST_RUN costs tens of milliseconds per call (it swaps the XDP dispatcher),
    /// far too coarse to pace from user space without sending in bursts.
    pub interval_ns: u64,
    /// The only interface the program sends from: the frame's ingress ifindex (which
    /// BPF_PROG_TEST_RUN takes from the caller's `xdp_md`) must equal it.
    pub ifindex: u32,
    /// One's complement sums of the template's constant words (see `partial_sums`).
    pub ip_sum: u32,
    pub tcp_sum: u32,
    /// The SYN before stamping: see `template`.
    pub template: [u8; FRAME_LEN],
    pub _pad: [u8; 2],
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for FloodConfig {}

/// What changes from one SYN to the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spoof {
    pub src_addr: u32,
    pub src_port: u16,
    pub seq: u32,
}

impl Spoof {
    /// Two random words make one SYN: 15 bits of address, a port of 1024 or above.
    #[inline(always)]
    pub const fn from_random(first: u32, second: u32) -> Self {
        Self {
            src_addr: SPOOF_NET | (first & SPOOF_HOST_MASK),
            src_port: (first >> 16) as u16 | 0x400,
            seq: second,
        }
    }
}

/// True for an address the generator may have spoofed.
#[inline(always)]
pub const fn is_spoofed(addr: u32) -> bool {
    addr & !SPOOF_HOST_MASK == SPOOF_NET
}

/// The template SYN: every field but the spoofed ones and the checksums, which are zero.
pub fn template(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    dst_addr: [u8; 4],
    dst_port: u16,
) -> [u8; FRAME_LEN] {
    let mut frame = [0u8; FRAME_LEN];
    frame[0..6].copy_from_slice(&dst_mac);
    frame[6..12].copy_from_slice(&src_mac);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    // Version 4, IHL 5; total length; id 0; DF; TTL 64; TCP.
    frame[14..16].copy_from_slice(&[0x45, 0]);
    frame[16..18].copy_from_slice(&(20 + TCP_LEN).to_be_bytes());
    frame[20..24].copy_from_slice(&[0x40, 0, 64, crate::tcp::IPPROTO_TCP]);
    frame[IP_DST..IP_DST + 4].copy_from_slice(&dst_addr);
    frame[TCP_DST_PORT..TCP_DST_PORT + 2].copy_from_slice(&dst_port.to_be_bytes());
    // Data offset 6 words, SYN, window 64240 (what Linux offers), MSS 1460.
    frame[46..48].copy_from_slice(&[6 << 4, crate::tcp::SYN]);
    frame[48..50].copy_from_slice(&64240u16.to_be_bytes());
    frame[54..58].copy_from_slice(&[crate::tcp::OPT_MSS, 4, 0x05, 0xb4]);
    frame
}

/// The sums of the template's IPv4 header and of its TCP pseudo-header and segment, with
/// the spoofed fields and checksums still zero: (ip_sum, tcp_sum).
pub fn partial_sums(template: &[u8; FRAME_LEN]) -> (u32, u32) {
    let ip_sum = sum_words(0, &template[14..34]);
    let mut tcp_sum = sum_words(0, &template[IP_DST..IP_DST + 4]);
    tcp_sum += u32::from(crate::tcp::IPPROTO_TCP) + u32::from(TCP_LEN);
    tcp_sum = sum_words(tcp_sum, &template[34..FRAME_LEN]);
    (ip_sum, tcp_sum)
}

impl FloodConfig {
    pub fn new(template: [u8; FRAME_LEN], ifindex: u32, limit: u64, interval_ns: u64) -> Self {
        let (ip_sum, tcp_sum) = partial_sums(&template);
        Self {
            limit,
            interval_ns,
            ifindex,
            ip_sum,
            tcp_sum,
            template,
            _pad: [0; 2],
        }
    }
}

/// Writes the template with `spoof` into `frame` and completes both checksums. The whole
/// frame is written: in live-frames mode the kernel recycles pages without restoring
/// them, so a frame may hold what the server made of an earlier SYN (its SYN-ACK).
#[inline(always)]
pub fn stamp(frame: &mut [u8; FRAME_LEN], config: &FloodConfig, spoof: &Spoof) {
    *frame = config.template;
    let addr_words = (spoof.src_addr >> 16) + (spoof.src_addr & 0xffff);
    let seq_words = (spoof.seq >> 16) + (spoof.seq & 0xffff);
    let ip_checksum = finish(config.ip_sum + addr_words);
    let tcp_checksum = finish(config.tcp_sum + addr_words + u32::from(spoof.src_port) + seq_words);
    frame[IP_SRC..IP_SRC + 4].copy_from_slice(&spoof.src_addr.to_be_bytes());
    frame[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&ip_checksum.to_be_bytes());
    frame[TCP_SRC_PORT..TCP_SRC_PORT + 2].copy_from_slice(&spoof.src_port.to_be_bytes());
    frame[TCP_SEQ..TCP_SEQ + 4].copy_from_slice(&spoof.seq.to_be_bytes());
    frame[TCP_CHECKSUM..TCP_CHECKSUM + 2].copy_from_slice(&tcp_checksum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{ipv4_header, tcp, verifies};

    fn stamped(spoof: &Spoof) -> [u8; FRAME_LEN] {
        let template = template([2, 0, 0, 0, 0, 3], [2, 0, 0, 0, 0, 4], [198, 18, 1, 1], 80);
        let config = FloodConfig::new(template, 1, 1, 0);
        // Start from garbage, as a recycled frame would.
        let mut frame = [0xa5; FRAME_LEN];
        stamp(&mut frame, &config, spoof);
        frame
    }

    #[test]
    fn stamped_checksums_match_full_computations() {
        for (first, second) in [(0, 0), (u32::MAX, u32::MAX), (0x1234_5678, 0x9abc_def0)] {
            let spoof = Spoof::from_random(first, second);
            let frame = stamped(&spoof);
            assert!(
                verifies(0, &frame[14..34]),
                "IPv4 header checksum for {spoof:?}"
            );
            let mut header = frame[14..34].to_vec();
            header[10..12].fill(0);
            assert_eq!(ipv4_header(&header).to_be_bytes(), frame[24..26]);
            let mut segment = frame[34..].to_vec();
            segment[16..18].fill(0);
            let sum = tcp(&frame[26..30], &frame[30..34], &segment);
            assert_eq!(
                sum.to_be_bytes(),
                frame[50..52],
                "TCP checksum for {spoof:?}"
            );
        }
    }

    #[test]
    fn spoofed_fields_land_where_tcp_and_ip_expect_them() {
        let spoof = Spoof::from_random(0xabcd_1234, 0x0102_0304);
        let frame = stamped(&spoof);
        assert_eq!(frame[26..30], [198, 18, 0x80 | 0x12, 0x34]);
        assert_eq!(frame[34..36], (0xabcdu16 | 0x400).to_be_bytes());
        assert_eq!(frame[38..42], [1, 2, 3, 4]);
        assert_eq!(frame[46..48], [0x60, 0x02]);
    }

    #[test]
    fn sources_stay_inside_198_18_128_0_17() {
        for first in [0, 0x7fff, 0x8000, u32::MAX] {
            let spoof = Spoof::from_random(first, 0);
            assert!(is_spoofed(spoof.src_addr));
            assert!(spoof.src_addr >= 0xc612_8000 && spoof.src_addr <= 0xc612_ffff);
            assert!(spoof.src_port >= 1024);
        }
        assert!(!is_spoofed(0xc612_0001), "198.18.0.1 is the lab's server");
        assert!(
            !is_spoofed(0xc613_8001),
            "198.19.128.1 is outside the range"
        );
    }
}
