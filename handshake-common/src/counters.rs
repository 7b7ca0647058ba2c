//! Per-CPU verdict counters: one slot of the `COUNTERS` per-CPU array per variant.
//!
//! Every packet the XDP program sees is counted exactly once, so the counters add up to
//! the packets received.

#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A SYN to a protected port answered with a cookie SYN-ACK (XDP_TX).
    SynAckSent = 0,
    /// A SYN passed because the kernel is not issuing cookies (`bpf_tcp_gen_syncookie`
    /// gave -ENOENT: `tcp_syncookies=1` and the SYN queue not full, or the accept queue full).
    SynPassedNoCookie,
    /// A SYN passed because nothing listens on that address and port (the kernel RSTs).
    SynPassedNoListener,
    /// A SYN passed because the 4-tuple belongs to a connection (established, TIME_WAIT or
    /// a pending request).
    SynPassedExisting,
    /// A SYN passed because the helper refused it for another reason, or the SYN-ACK could
    /// not be built (no tailroom): the kernel answers it itself.
    SynPassedError,
    /// A SYN to a listener whose IPv4 header or TCP checksum does not verify: passed
    /// untouched, never answered. The kernel discards it and counts `TcpInCsumErrors`; a
    /// frame from a local veth peer with checksum offload (partial checksum) is still
    /// answered by the kernel, where dropping would black-hole it.
    SynPassedBadChecksum,
    /// A SYN that must never be answered: a source the kernel calls martian (zero,
    /// loopback, multicast, broadcast, IPv4-mapped IPv6, equal to the destination), a
    /// non-unicast destination (MAC or IP) or source port 0. Dropped: the kernel would
    /// discard it too, and a reply would reflect traffic at a victim.
    SynDroppedInvalid,
    /// A SYN that is not this host's: its frame is addressed to another MAC (a
    /// promiscuous port, a bridge member, a macvlan parent) or its destination address is
    /// not local (routed through this host). Passed untouched: the kernel drops
    /// PACKET_OTHERHOST frames and forwards or drops the rest; it would never answer them.
    SynPassedNotForHost,
    /// A SYN only the kernel can answer exactly: IPv4 options (source routes are the
    /// kernel's to refuse, `ip_rcv_options`), TCP-MD5, TCP-AO or MPTCP options (signed,
    /// or answered with options handshake does not speak), or timestamps while
    /// `tcp_timestamps=1` (the kernel's TSval holds a secret offset). Passed untouched.
    SynPassedKernelOnly,
    /// A third-packet ACK whose cookie the kernel validated: passed to the kernel.
    AckValidated,
    /// An ACK to a listener with no valid cookie: dropped before the kernel RSTs it.
    AckDroppedForged,
    /// An ACK to a listener with no valid cookie while no flood is on: passed, so that the
    /// kernel answers with the RST RFC 9293 3.10.7.2 asks for (a client whose server lost
    /// the connection learns at once).
    AckPassedNoFlood,
    /// A packet of an established (or pending) connection to a protected port.
    PassedEstablished,
    /// An ACK to a protected port where nothing listens, or cookies are off, or one without
    /// a valid cookie during a flood that is not this host's (see `SynPassedNotForHost`).
    AckPassedOther,
    /// Other TCP to a protected port (RST, FIN without ACK, SYN-ACK, ...).
    PassedOtherTcp,
    /// TCP to a port that is not protected.
    PassedUnprotected,
    /// Not TCP over IPv4/IPv6, IPv6 with extension headers, an IPv4 fragment, or a frame
    /// with more than two VLAN tags.
    PassedNotTcp,
    /// Truncated or inconsistent headers: passed untouched for the kernel to judge.
    Malformed,
    /// TCP to a protected port from a source on the allow list (health checkers, load
    /// balancers): passed untouched, whatever its flags; the kernel answers it as if
    /// handshake were not there.
    PassedAllowed,
    /// TCP to a protected port from a source on the deny list: dropped, whatever its
    /// flags (connections from there stop too).
    DroppedDenied,
    /// A SYN to a protected port over its source's rate (`handshake limit set
    /// --syn-per-source`, `--syn-per-network`): dropped.
    SynDroppedRateLimited,
    /// A SYN to a protected port whose answer would pass the cap on SYN-ACKs per second
    /// from the interface or to the SYN's source network (`--syn-acks-per-second`,
    /// `--syn-acks-per-destination`): dropped, so that a spoofed flood cannot reflect
    /// more than the cap at a victim.
    SynDroppedReflectionCap,
}

pub const COUNTER_COUNT: u32 = Counter::SynDroppedReflectionCap as u32 + 1;

/// The verdicts counted per protected port, in the `PORT_COUNTERS` per-CPU array (indexed
/// by the port's slot, see `config::PORTS_LEN`). These three are counted there only, not
/// in `COUNTERS` too: one per-CPU lookup per packet (a helper call before Linux 6.10).
/// Their totals are `COUNTERS`' entry plus every slot's, slot 0 holding what the ports
/// that gave their slot up had counted (see handshake-user's port_table.rs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub syn_ack_sent: u64,
    pub ack_validated: u64,
    pub ack_dropped_forged: u64,
}

impl PortCounters {
    /// Whether `counter` (a `Counter` as u32, as the XDP program carries it) is one of the
    /// per-port verdicts.
    #[inline(always)]
    pub fn counted_per_port(counter: u32) -> bool {
        counter == Counter::SynAckSent as u32
            || counter == Counter::AckValidated as u32
            || counter == Counter::AckDroppedForged as u32
    }

    /// Counts `counter` if it is one of the per-port verdicts.
    #[inline(always)]
    pub fn count(&mut self, counter: u32) {
        if counter == Counter::SynAckSent as u32 {
            self.syn_ack_sent += 1;
        } else if counter == Counter::AckValidated as u32 {
            self.ack_validated += 1;
        } else if counter == Counter::AckDroppedForged as u32 {
            self.ack_dropped_forged += 1;
        }
    }

    /// This port's count of `counter`, 0 for a counter not counted per port.
    pub fn get(&self, counter: Counter) -> u64 {
        match counter {
            Counter::SynAckSent => self.syn_ack_sent,
            Counter::AckValidated => self.ack_validated,
            Counter::AckDroppedForged => self.ack_dropped_forged,
            _ => 0,
        }
    }

    pub fn add(&mut self, other: &PortCounters) {
        self.syn_ack_sent += other.syn_ack_sent;
        self.ack_validated += other.ack_validated;
        self.ack_dropped_forged += other.ack_dropped_forged;
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for PortCounters {}

/// One CPU's entry of a port's slot: its counters and its flood window.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PortSlot {
    pub counters: PortCounters,
    pub flood: FloodWindow,
}

/// Where one CPU's flood windows stand for one port (handshake-ebpf's flood.rs): a flood
/// is on for a port, as the kernel's cookie check is on per listener
/// (`tcp_synq_no_recent_overflow`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FloodWindow {
    /// `bpf_ktime_get_ns() >> WINDOW_SHIFT` of the current window.
    pub index: u64,
    /// This CPU's `syn_ack_sent` of the port when the current window started.
    pub start: u64,
    /// SYN-ACKs this CPU sent to the port in the previous window (0 if that window is
    /// older).
    pub previous: u64,
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for PortSlot {}

/// Every counter in map order, with its metric name and help text.
pub const ALL: [(Counter, &str, &str); COUNTER_COUNT as usize] = [
    (
        Counter::SynAckSent,
        "syn_ack_sent",
        "SYNs answered with a cookie SYN-ACK at XDP",
    ),
    (
        Counter::SynPassedNoCookie,
        "syn_passed_no_cookie",
        "SYNs passed: the kernel is not in cookie mode",
    ),
    (
        Counter::SynPassedNoListener,
        "syn_passed_no_listener",
        "SYNs passed: no listening socket",
    ),
    (
        Counter::SynPassedExisting,
        "syn_passed_existing",
        "SYNs passed: the 4-tuple has a connection",
    ),
    (
        Counter::SynPassedError,
        "syn_passed_error",
        "SYNs passed: the cookie helper or the rewrite failed",
    ),
    (
        Counter::SynPassedBadChecksum,
        "syn_passed_bad_checksum",
        "SYNs passed unanswered: bad IPv4 header or TCP checksum",
    ),
    (
        Counter::SynDroppedInvalid,
        "syn_dropped_invalid",
        "SYNs dropped: martian address, non-unicast destination or port 0",
    ),
    (
        Counter::SynPassedNotForHost,
        "syn_passed_not_for_host",
        "SYNs passed: another host's MAC or a destination address that is not local",
    ),
    (
        Counter::SynPassedKernelOnly,
        "syn_passed_kernel_only",
        "SYNs passed for the kernel to answer: IPv4 options, TCP-MD5, TCP-AO, MPTCP, or timestamps with tcp_timestamps=1",
    ),
    (
        Counter::AckValidated,
        "ack_validated",
        "third ACKs with a valid cookie, passed to the kernel",
    ),
    (
        Counter::AckDroppedForged,
        "ack_dropped_forged",
        "ACKs to a listener with an invalid cookie during a flood, dropped",
    ),
    (
        Counter::AckPassedNoFlood,
        "ack_passed_no_flood",
        "ACKs to a listener with no valid cookie outside a flood, passed for the kernel's RST",
    ),
    (
        Counter::PassedEstablished,
        "passed_established",
        "packets of existing connections, passed",
    ),
    (
        Counter::AckPassedOther,
        "ack_passed_other",
        "ACKs passed: no listener, cookies off, or another host's during a flood",
    ),
    (
        Counter::PassedOtherTcp,
        "passed_other_tcp",
        "other TCP to protected ports (RST, FIN, SYN-ACK), passed",
    ),
    (
        Counter::PassedUnprotected,
        "passed_unprotected",
        "TCP to unprotected ports, passed",
    ),
    (
        Counter::PassedNotTcp,
        "passed_not_tcp",
        "not TCP, IPv6 extension headers, IPv4 fragments or 3+ VLAN tags, passed",
    ),
    (
        Counter::Malformed,
        "malformed",
        "truncated or inconsistent headers, passed",
    ),
    (
        Counter::PassedAllowed,
        "passed_allowed",
        "TCP to protected ports from a source on the allow list, passed untouched",
    ),
    (
        Counter::DroppedDenied,
        "dropped_denied",
        "TCP to protected ports from a source on the deny list, dropped",
    ),
    (
        Counter::SynDroppedRateLimited,
        "syn_dropped_rate_limited",
        "SYNs dropped: over the rate limit of their source host or network",
    ),
    (
        Counter::SynDroppedReflectionCap,
        "syn_dropped_reflection_cap",
        "SYNs dropped: over the cap on SYN-ACKs per second from the interface or to one destination network",
    ),
];

impl Counter {
    pub const fn name(self) -> &'static str {
        ALL[self as usize].1
    }

    /// SYNs to protected ports: the sum of every SYN verdict.
    pub const SYN_VERDICTS: [Counter; 11] = [
        Counter::SynAckSent,
        Counter::SynPassedNoCookie,
        Counter::SynPassedNoListener,
        Counter::SynPassedExisting,
        Counter::SynPassedError,
        Counter::SynPassedBadChecksum,
        Counter::SynDroppedInvalid,
        Counter::SynPassedNotForHost,
        Counter::SynPassedKernelOnly,
        Counter::SynDroppedRateLimited,
        Counter::SynDroppedReflectionCap,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_map_order() {
        for (index, (counter, _, _)) in ALL.iter().enumerate() {
            assert_eq!(*counter as usize, index);
        }
    }
}
