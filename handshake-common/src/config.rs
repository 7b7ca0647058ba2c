//! The settings the loader writes into the `CONFIG` map and the XDP program reads per SYN.

/// `net.ipv4.tcp_timestamps=2`: answer a SYN that offers TS with TS, SACK_PERM and WS, as
/// the kernel's own cookie SYN-ACK does (see `syn_ack::cookie_tsval`).
pub const FLAG_TIMESTAMPS: u8 = 1 << 0;
/// `net.ipv4.tcp_sack` is on: the kernel refuses a cookie ACK whose TSecr claims SACK
/// when it is off (`cookie_timestamp_decode`), so SACK is only offered when this is set.
pub const FLAG_SACK: u8 = 1 << 1;
/// `net.ipv4.tcp_window_scaling` is on: likewise for window scaling.
pub const FLAG_WSCALE: u8 = 1 << 2;
/// `net.ipv4.tcp_timestamps=1`: the kernel's TSval for a SYN that offers TS carries a
/// per-connection secret offset (`secure_tcp_ts_off`) no program can compute, so such a
/// SYN is the kernel's to answer.
pub const FLAG_TS_TO_KERNEL: u8 = 1 << 3;
/// `net.ipv4.tcp_ecn` is not 0: a SYN asking for ECN gets it (`tcp_ecn_create_request`).
pub const FLAG_ECN: u8 = 1 << 4;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The MSS the SYN-ACK advertises: the server's, not the client's.
    pub mss_ipv4: u16,
    pub mss_ipv6: u16,
    /// The window scale the kernel will use for the accepted socket
    /// (`tcp_select_initial_window`); advertised only in timestamps mode.
    pub wscale: u8,
    pub flags: u8,
    /// How the loader attached the program (`MODE_*`); the program does not read it,
    /// `handshake status` does.
    pub mode: u8,
    pub _pad: u8,
    /// The interface's own MAC: a frame addressed to any other is not this host's
    /// (`eth_type_trans` marks it PACKET_OTHERHOST and the stack drops it).
    pub mac: [u8; 6],
    /// The SYN-ACK's IPv4 TTL (`net.ipv4.ip_default_ttl`) and IPv6 hop limit
    /// (`net.ipv6.conf.IF.hop_limit`), as `ip_select_ttl` and `ip6_dst_hoplimit` pick
    /// them for a listener without IP_TTL / IPV6_UNICAST_HOPS on a route without a
    /// hoplimit metric.
    pub ttl: u8,
    pub hop_limit: u8,
    /// SYN-ACKs one CPU sends per second from which on an ACK without a valid cookie is
    /// dropped (a flood of forged ACKs) rather than passed for the kernel's RST; 0 drops
    /// them always.
    pub flood_syn_acks: u32,
    /// `tcp_full_space` of a listener with default buffers (half of `tcp_rmem[1]`): what
    /// the SYN-ACK's window is cut from (see `syn_ack::window`).
    pub full_space: u32,
}

/// The default of `Config::flood_syn_acks`: far above what a server's real clients
/// open per CPU, far below what even a small SYN flood sends.
pub const DEFAULT_FLOOD_SYN_ACKS: u32 = 1000;

pub const MODE_NATIVE: u8 = 1;
pub const MODE_GENERIC: u8 = 2;

impl Config {
    pub const fn timestamps(&self) -> bool {
        self.flags & FLAG_TIMESTAMPS != 0
    }

    pub const fn sack(&self) -> bool {
        self.flags & FLAG_SACK != 0
    }

    pub const fn window_scaling(&self) -> bool {
        self.flags & FLAG_WSCALE != 0
    }

    pub const fn timestamps_to_kernel(&self) -> bool {
        self.flags & FLAG_TS_TO_KERNEL != 0
    }

    pub const fn ecn(&self) -> bool {
        self.flags & FLAG_ECN != 0
    }
}

/// Index of the single entry of the `CONFIG` array map.
pub const CONFIG_KEY: u32 = 0;

/// Entries of the `PORTS` array map: one per TCP port. 0 means unprotected; a protected
/// port holds its slot (1..=MAX_PORTS) in the `PORT_COUNTERS` map.
pub const PORTS_LEN: u32 = 1 << 16;

/// How many ports one interface can protect: each has a slot of per-port counters.
pub const MAX_PORTS: u32 = 1024;

#[cfg(feature = "user")]
unsafe impl aya::Pod for Config {}
