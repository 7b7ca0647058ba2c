//! The settings the loader writes into the `CONFIG` map and the XDP program reads per SYN.

use crate::rate_limit::Rate;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The MSS the SYN-ACK advertises (the server's, not the client's): the operator's
    /// `--mss`, or with `mss_from_mtu` what the interface's MTU gave at attach (shown by
    /// `status`; the program then takes the MTU as it is at each SYN).
    pub mss_ipv4: u16,
    pub mss_ipv6: u16,
    /// The interface's own MAC: a frame addressed to any other is not this host's
    /// (`eth_type_trans` marks it PACKET_OTHERHOST and the stack drops it).
    pub mac: [u8; 6],
    /// The SYN-ACK's IPv6 hop limit (`net.ipv6.conf.IF.hop_limit`), as
    /// `ip6_dst_hoplimit` picks it for a listener without IPV6_UNICAST_HOPS on a route
    /// without a hoplimit metric. (The IPv4 TTL's sysctl is per namespace, and read live:
    /// see `listener.rs`.)
    pub hop_limit: u8,
    /// How the loader attached the program (`MODE_*`); the program does not read it,
    /// `handshake status` does.
    pub mode: u8,
    /// SYN-ACKs one CPU sends per second for a port from which on an ACK to that port
    /// without a valid cookie is dropped (a flood of forged ACKs) rather than passed for the
    /// kernel's RST; 0 drops them always.
    pub flood_syn_acks: u32,
    /// `net.core.rmem_max`, which the window scale depends on (`tcp_select_initial_window`):
    /// a global of the kernel's, not of the namespace the program can read.
    pub rmem_max: u32,
    /// 1: no `--mss`; the MSS follows the interface's MTU as the kernel's
    /// `ipv4_default_advmss` / `ip6_default_advmss` derive it, read per SYN.
    pub mss_from_mtu: u8,
    /// Which source lists hold a prefix (`LIST_*` bits): the program looks up only those,
    /// so an empty list costs no helper call (an LPM lookup is one, ~40 ns on AMD hosts
    /// with return thunks). The loader sets a bit after the list's first prefix is in and
    /// clears it when the list is empty.
    pub lists: u8,
    /// 1: dry run. Every verdict is decided and counted as it would be, and every packet
    /// passes: no SYN is rewritten into a SYN-ACK, nothing is dropped.
    pub dry_run: u8,
    /// Which SYN rate limits are on (`LIMIT_*` bits); 0, the default, costs the SYN path
    /// this one test (see handshake-ebpf/src/rate_limit.rs).
    pub limits: u8,
    /// SYNs a second from one source host (IPv4 /32, IPv6 /64), and from one source
    /// network (IPv4 /24, IPv6 /48).
    pub syn_per_source: Rate,
    pub syn_per_network: Rate,
    /// SYN-ACKs a second from the interface, and to one destination network (the SYN's
    /// source /24 or /48): a cap on what a spoofed flood can reflect at a victim.
    pub syn_acks: Rate,
    pub syn_acks_per_destination: Rate,
    /// Sampling for `handshake capture` and `top` (`sample.rs`): bit `1 << counter` set for
    /// each verdict to sample into the `SAMPLES` ring buffer; 0 (no capture runs) costs the
    /// program this one test.
    pub sample_counters: u64,
    /// Sample 1 in this many of those frames (0 and 1: every one).
    pub sample_every: u32,
    /// The pid of the capture that turned sampling on: `status` tells a running capture
    /// from one that was killed and left sampling on.
    pub sample_owner: u32,
}

/// `Config::limits` bits: which of the `Config` rates is on.
pub const LIMIT_SOURCE: u8 = 1 << 0;
pub const LIMIT_NETWORK: u8 = 1 << 1;
pub const LIMIT_SYN_ACKS: u8 = 1 << 2;
pub const LIMIT_DESTINATION: u8 = 1 << 3;

/// The default of `Config::flood_syn_acks`: far above what a server's real clients
/// open per CPU, far below what even a small SYN flood sends.
pub const DEFAULT_FLOOD_SYN_ACKS: u32 = 1000;

/// `Config::lists` bits: which source list of which family holds at least one prefix.
pub const LIST_ALLOW_V4: u8 = 1 << 0;
pub const LIST_ALLOW_V6: u8 = 1 << 1;
pub const LIST_DENY_V4: u8 = 1 << 2;
pub const LIST_DENY_V6: u8 = 1 << 3;

/// Prefixes one source list holds per family (`ALLOW_V4`, `ALLOW_V6`, `DENY_V4`,
/// `DENY_V6` LPM tries). The tries are not preallocated: an empty one costs no memory.
pub const LIST_ENTRIES: u32 = 1 << 17;

/// Routes one family's `LOCAL_V4` / `LOCAL_V6` trie holds: the namespace's local routing
/// table (an address each, its broadcast and anycast routes, AnyIP prefixes).
pub const LOCAL_ROUTES: u32 = 1 << 16;
/// A `LOCAL_*` entry's value: the route delivers to this host (`type local`). The local
/// table's other types (broadcast, anycast, multicast, ...) are kept as
/// `ROUTE_NOT_LOCAL`, so that the longest match says what the kernel's routing would.
pub const ROUTE_LOCAL: u8 = 1;
pub const ROUTE_NOT_LOCAL: u8 = 0;

/// Addresses per family `LocalHosts` holds.
pub const LOCAL_HOSTS_LEN: usize = 4;
/// `LocalHosts::v4_len` / `v6_len` when the family's local routes are not all host routes
/// (an AnyIP prefix) or too many: the program asks the `LOCAL_*` trie instead.
pub const ASK_TRIE: u8 = u8::MAX;

/// The usual local table, in a form the program checks without a helper call: when a
/// family's local routes are a few host routes (a server's addresses), the destination is
/// local exactly when it is one of them. Loopback routes are left out: the program drops
/// SYNs to loopback addresses before it asks (`martian`). The single entry of the
/// `LOCAL_HOSTS` array map, kept with the tries by the loader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalHosts {
    /// IPv4 addresses as the packet holds them (network order).
    pub v4: [[u8; 4]; LOCAL_HOSTS_LEN],
    /// IPv6 addresses as four words in packet order.
    pub v6: [[u32; 4]; LOCAL_HOSTS_LEN],
    /// How many of `v4` and `v6` are set, or `ASK_TRIE`.
    pub v4_len: u8,
    pub v6_len: u8,
    pub _pad: [u8; 6],
}

pub const MODE_NATIVE: u8 = 1;
pub const MODE_GENERIC: u8 = 2;

/// Index of the single entry of the `CONFIG` array map.
pub const CONFIG_KEY: u32 = 0;

/// Entries of the `PORTS` array map: one per TCP port. 0 means unprotected; a protected
/// port holds its slot (1..=MAX_PORTS) in the `PORT_COUNTERS` map.
pub const PORTS_LEN: u32 = 1 << 16;

/// How many ports one interface can protect: each has a slot of per-port counters.
pub const MAX_PORTS: u32 = 1024;

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for LocalHosts {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_a_multiple_of_8_bytes() {
        assert_eq!(size_of::<Config>(), 72);
    }
}
