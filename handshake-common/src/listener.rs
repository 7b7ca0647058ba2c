//! What the kernel's own SYN-ACK takes from the listener and from its network namespace,
//! and how: the XDP program reads these fields live, per SYN, from the listener the
//! lookup found (`bpf_skc_to_tcp_sock`, then plain loads the verifier checks against the
//! kernel's BTF), so a listener's SO_RCVBUF, TCP_MAXSEG or IP_TOS and a sysctl changed
//! while attached are answered as the kernel answers them, with no daemon to keep a map
//! current.
//!
//! Where the members sit differs between kernels: the loader reads their offsets from
//! the running kernel's BTF into `KernelLayout`, a read-only global of the program that
//! the verifier sees as constants (a frozen `.rodata` map).

/// Where one member sits: `size` bytes at `offset` from the start of its struct, and for
/// a bitfield the `bits` bits from bit `shift` of that value. `size` 0: the kernel has no
/// such member.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u8,
    pub shift: u8,
    pub bits: u8,
    pub _pad: u8,
}

impl Field {
    pub const ABSENT: Field = Field {
        offset: 0,
        size: 0,
        shift: 0,
        bits: 0,
        _pad: 0,
    };

    pub const fn present(&self) -> bool {
        self.size != 0
    }

    /// The field from its eight bytes as they lie in memory: the XDP program reads each
    /// `Field` of its layout with one 8-byte load rather than one per member.
    #[inline(always)]
    pub const fn from_bytes(bytes: [u8; 8]) -> Field {
        let [a, b, c, d, size, shift, bits, _pad] = bytes;
        Field {
            offset: u32::from_ne_bytes([a, b, c, d]),
            size,
            shift,
            bits,
            _pad,
        }
    }

    /// The member's value from the `size` bytes read at `offset` (little-endian, as BPF
    /// runs only on the host's byte order), sign-extended when `signed`.
    #[inline(always)]
    pub const fn value(&self, raw: u64, signed: bool) -> i64 {
        if self.bits != 0 {
            let value = (raw >> self.shift) & ((1 << self.bits) - 1);
            // A signed bitfield's top bit is its sign (6.1's 9-bit `hop_limit`: -1 unset):
            // shifted up to bit 63 and back, arithmetically, without a branch.
            if signed {
                let unused = 64 - self.bits as u32;
                return ((value << unused) as i64) >> unused;
            }
            return value as i64;
        }
        match (self.size, signed) {
            (1, true) => raw as u8 as i8 as i64,
            (2, true) => raw as u16 as i16 as i64,
            (4, true) => raw as u32 as i32 as i64,
            (1, false) => raw as u8 as i64,
            (2, false) => raw as u16 as i64,
            (4, false) => raw as u32 as i64,
            _ => raw as i64,
        }
    }
}

/// The members handshake reads, by struct. Offsets in the listener's structs count from
/// the start of its `struct tcp_sock` (which begins with `inet_sock`, which begins with
/// `sock`); those of `ipv6_pinfo` and `net` from the struct the pointer leads to.
///
/// The program reads most at the one width their type has from Linux 6.1 to 6.18 (the
/// loader checks it); only `sk_userlocks`, `repflow` and `np_hop_limit`, bitfields on 6.1,
/// are decoded from their `Field` at run time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLayout {
    /// Set by the loader: 0 in an object nobody configured, which then answers nothing.
    pub loaded: u32,
    /// `REPFLOW_*`: where the listener's "reflect the flow label" bit lives.
    pub repflow_in: u32,
    pub sk_rcvbuf: Field,
    pub sk_userlocks: Field,
    /// `sk->__sk_common.skc_net.net`, a pointer.
    pub sk_net: Field,
    pub inet_tos: Field,
    pub inet_uc_ttl: Field,
    pub inet_pmtudisc: Field,
    /// `inet_sk(sk)->pinet6`, a pointer; NULL for an IPv4-only listener.
    pub inet_pinet6: Field,
    pub repflow: Field,
    pub tp_window_clamp: Field,
    pub tp_user_mss: Field,
    /// Linux 6.6+: `tcp_win_from_space` scales by it; before, by `tcp_adv_win_scale`.
    pub tp_scaling_ratio: Field,
    pub np_tclass: Field,
    pub np_hop_limit: Field,
    pub net_tcp_timestamps: Field,
    pub net_tcp_sack: Field,
    pub net_tcp_window_scaling: Field,
    pub net_tcp_ecn: Field,
    pub net_ip_default_ttl: Field,
    /// `tcp_rmem[2]`.
    pub net_tcp_rmem_max: Field,
    pub net_tcp_reflect_tos: Field,
    pub net_tcp_adv_win_scale: Field,
    pub net_tcp_workaround_signed_windows: Field,
}

impl KernelLayout {
    /// What the object holds until the loader writes the running kernel's layout.
    pub const UNSET: KernelLayout = KernelLayout {
        loaded: 0,
        repflow_in: 0,
        sk_rcvbuf: Field::ABSENT,
        sk_userlocks: Field::ABSENT,
        sk_net: Field::ABSENT,
        inet_tos: Field::ABSENT,
        inet_uc_ttl: Field::ABSENT,
        inet_pmtudisc: Field::ABSENT,
        inet_pinet6: Field::ABSENT,
        repflow: Field::ABSENT,
        tp_window_clamp: Field::ABSENT,
        tp_user_mss: Field::ABSENT,
        tp_scaling_ratio: Field::ABSENT,
        np_tclass: Field::ABSENT,
        np_hop_limit: Field::ABSENT,
        net_tcp_timestamps: Field::ABSENT,
        net_tcp_sack: Field::ABSENT,
        net_tcp_window_scaling: Field::ABSENT,
        net_tcp_ecn: Field::ABSENT,
        net_ip_default_ttl: Field::ABSENT,
        net_tcp_rmem_max: Field::ABSENT,
        net_tcp_reflect_tos: Field::ABSENT,
        net_tcp_adv_win_scale: Field::ABSENT,
        net_tcp_workaround_signed_windows: Field::ABSENT,
    };
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for KernelLayout {}

/// `KernelLayout::repflow_in`: Linux before 6.6 keeps it in `ipv6_pinfo` (`np->repflow`),
/// later ones in `inet_sock.inet_flags` (`INET_FLAGS_REPFLOW`).
pub const REPFLOW_IN_PINFO: u32 = 0;
pub const REPFLOW_IN_INET: u32 = 1;

/// `SOCK_RCVBUF_LOCK` in `sk_userlocks`: the listener set SO_RCVBUF.
pub const SOCK_RCVBUF_LOCK: u8 = 2;
/// `IP_PMTUDISC_WANT` and `IP_PMTUDISC_DO`: the only `pmtudisc` values with which
/// `ip_dont_fragment` sets DF (and the ID is then 0); with the others the kernel's
/// SYN-ACK has a random ID that no program can reproduce.
pub const IP_PMTUDISC_WANT: u8 = 1;
pub const IP_PMTUDISC_DO: u8 = 2;

/// The listener's members the SYN-ACK depends on, as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listener {
    pub rcvbuf: u32,
    pub rcvbuf_locked: bool,
    /// TCP_WINDOW_CLAMP; 0 when not set.
    pub window_clamp: u32,
    /// TCP_MAXSEG; 0 when not set.
    pub user_mss: u16,
    /// 0 on kernels that scale by `tcp_adv_win_scale`.
    pub scaling_ratio: u8,
    /// IP_TOS (its ECN bits are always clear for TCP: `__ip_sock_set_tos`).
    pub tos: u8,
    /// IP_TTL; negative when not set.
    pub ttl: i16,
    pub pmtudisc: u8,
    /// IPV6_TCLASS.
    pub tclass: u8,
    /// IPV6_UNICAST_HOPS; negative when not set.
    pub hop_limit: i16,
    /// The SYN's flow label goes back in the SYN-ACK (`net.ipv6.flowlabel_reflect` bit 0
    /// when the listener was created, or IPV6_FLOWINFO_SEND... see `tcp_v6_send_synack`).
    pub reflect_flow_label: bool,
}

/// The listener's network namespace's sysctls the SYN-ACK depends on, as read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    pub timestamps: u8,
    pub sack: bool,
    pub window_scaling: bool,
    pub ecn: u8,
    pub default_ttl: u8,
    /// `tcp_rmem[2]`.
    pub tcp_rmem_max: u32,
    pub reflect_tos: bool,
    pub adv_win_scale: i32,
    pub workaround_signed_windows: bool,
}

/// `MAX_TCP_WINDOW`: the largest window with `tcp_workaround_signed_windows`.
const MAX_TCP_WINDOW: u32 = 32767;
/// `TCP_MAX_WSCALE` (RFC 7323 2.3).
const MAX_WSCALE: u32 = 14;
/// `TCP_RMEM_TO_WIN_SCALE`.
const RMEM_TO_WIN_SCALE: u32 = 8;

/// `tcp_full_space`: the part of the listener's receive buffer the window may offer.
#[inline(always)]
pub fn full_space(listener: &Listener, net: &Namespace) -> u32 {
    let space = listener.rcvbuf;
    if listener.scaling_ratio != 0 {
        return ((u64::from(space) * u64::from(listener.scaling_ratio)) >> RMEM_TO_WIN_SCALE)
            as u32;
    }
    // A negative scale shifts right; the sysctl is bounded to -31..=31.
    let scale = net.adv_win_scale;
    if scale <= 0 {
        space >> ((-scale) as u32 & 31)
    } else {
        space - (space >> (scale as u32 & 31))
    }
}

/// `tcp_mss_clamp`: the MSS the SYN-ACK advertises, the route's unless TCP_MAXSEG is
/// smaller.
#[inline(always)]
pub fn mss(listener: &Listener, route_mss: u16) -> u16 {
    if listener.user_mss != 0 && listener.user_mss < route_mss {
        listener.user_mss
    } else {
        route_mss
    }
}

/// `ip_rt_min_advmss` and `ip6_rt_min_advmss` as the kernel starts them
/// (`net.ipv4.route.min_adv_mss`, `net.ipv6.route.min_adv_mss`).
const MIN_ADVMSS_IPV4: u32 = 256;
const MIN_ADVMSS_IPV6: u32 = 1220;
/// `IPV6_MAXPLEN`.
const IPV6_MAXPLEN: u32 = 65_535;

/// `ipv4_default_advmss`: the MSS of a route over a device of `mtu`, without an
/// `advmss` metric: the MTU less 40 bytes of headers, at least `ip_rt_min_advmss`, at
/// most what a 64 KiB datagram holds.
#[inline(always)]
pub fn advmss_ipv4(mtu: u32) -> u16 {
    let mtu = if mtu > 0xffff { 0xffff } else { mtu };
    let advmss = mtu.saturating_sub(40);
    let advmss = if advmss < MIN_ADVMSS_IPV4 {
        MIN_ADVMSS_IPV4
    } else {
        advmss
    };
    if advmss > 0xffff - 40 {
        (0xffff - 40) as u16
    } else {
        advmss as u16
    }
}

/// `ip6_default_advmss`: the MTU less 60 bytes, at least `ip6_rt_min_advmss`; a value
/// past the largest non-jumbo payload becomes `IPV6_MAXPLEN` ("any MSS").
#[inline(always)]
pub fn advmss_ipv6(mtu: u32) -> u16 {
    let advmss = mtu.saturating_sub(60);
    let advmss = if advmss < MIN_ADVMSS_IPV6 {
        MIN_ADVMSS_IPV6
    } else {
        advmss
    };
    if advmss > IPV6_MAXPLEN - 20 {
        IPV6_MAXPLEN as u16
    } else {
        advmss as u16
    }
}

/// The SYN-ACK's window and our window scale, as `tcp_openreq_init_rwin` and
/// `tcp_select_initial_window` choose them for this listener. `mss` is the advertised
/// one; `timestamps` whether TS goes out (it costs 12 bytes of each segment); `wscale_ok`
/// whether the SYN-ACK carries WS. `rmem_max` is `net.core.rmem_max`, a global the
/// program cannot read (the loader writes it into `Config`).
#[inline(always)]
pub fn initial_window(
    listener: &Listener,
    net: &Namespace,
    rmem_max: u32,
    mss: u16,
    timestamps: bool,
    wscale_ok: bool,
) -> (u16, u8) {
    let full_space = full_space(listener, net);
    let mut clamp = listener.window_clamp;
    if listener.rcvbuf_locked && (clamp > full_space || clamp == 0) {
        clamp = full_space;
    }
    if clamp == 0 {
        clamp = u32::from(u16::MAX) << MAX_WSCALE;
    }
    let mss = u32::from(if timestamps {
        mss.saturating_sub(12)
    } else {
        mss
    })
    .max(1);
    let mut space = if full_space < clamp {
        full_space
    } else {
        clamp
    };
    if space > mss {
        space -= space % mss;
    }
    let limit = if net.workaround_signed_windows {
        MAX_TCP_WINDOW
    } else {
        u32::from(u16::MAX)
    };
    let window = if space < limit { space } else { limit };
    let mut wscale = 0;
    if wscale_ok {
        let mut scaled = space;
        if scaled < net.tcp_rmem_max {
            scaled = net.tcp_rmem_max;
        }
        if scaled < rmem_max {
            scaled = rmem_max;
        }
        if scaled > clamp {
            scaled = clamp;
        }
        let log = ilog2(scaled);
        wscale = log.saturating_sub(15);
        if wscale > MAX_WSCALE {
            wscale = MAX_WSCALE;
        }
    }
    (window as u16, wscale as u8)
}

/// The position of the highest set bit (0 for 0 and 1), by halving: no loop for the
/// verifier to walk.
#[inline(always)]
pub fn ilog2(mut value: u32) -> u32 {
    let mut log = 0;
    for shift in [16, 8, 4, 2, 1] {
        if value >> shift != 0 {
            value >>= shift;
            log += shift;
        }
    }
    log
}

/// The IPv4 TOS byte or IPv6 traffic class of the SYN-ACK (`tcp_v4_send_synack`,
/// `tcp_v6_send_synack`): the listener's, or with `tcp_reflect_tos` the SYN's DSCP.
#[inline(always)]
pub fn tos(listener_tos: u8, net: &Namespace, syn_tos: u8) -> u8 {
    const ECN_MASK: u8 = 0b11;
    if net.reflect_tos {
        (syn_tos & !ECN_MASK) | (listener_tos & ECN_MASK)
    } else {
        listener_tos
    }
}

/// `ip_select_ttl`: the listener's IP_TTL, else the namespace's default (the route's
/// hoplimit metric, which the kernel would prefer, is not read: README).
#[inline(always)]
pub fn ttl(listener: &Listener, net: &Namespace) -> u8 {
    if listener.ttl >= 0 {
        listener.ttl as u8
    } else {
        net.default_ttl
    }
}

/// `ip6_xmit`: the listener's IPV6_UNICAST_HOPS, else the interface's hop limit.
#[inline(always)]
pub fn hop_limit(listener: &Listener, device_hop_limit: u8) -> u8 {
    if listener.hop_limit >= 0 {
        listener.hop_limit as u8
    } else {
        device_hop_limit
    }
}

/// Whether `ip_dont_fragment` sets DF (and the kernel's SYN-ACK has ID 0).
#[inline(always)]
pub fn dont_fragment(listener: &Listener) -> bool {
    listener.pmtudisc == IP_PMTUDISC_WANT || listener.pmtudisc == IP_PMTUDISC_DO
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_listener() -> Listener {
        Listener {
            rcvbuf: 131_072,
            scaling_ratio: 128,
            ttl: -1,
            hop_limit: -1,
            pmtudisc: IP_PMTUDISC_WANT,
            ..Listener::default()
        }
    }

    fn namespace() -> Namespace {
        Namespace {
            timestamps: 1,
            sack: true,
            window_scaling: true,
            ecn: 2,
            default_ttl: 64,
            tcp_rmem_max: 33_554_432,
            adv_win_scale: 1,
            ..Namespace::default()
        }
    }

    #[test]
    fn a_field_reads_back_from_its_bytes() {
        let field = Field {
            offset: 0x0102_0304,
            size: 2,
            shift: 3,
            bits: 9,
            _pad: 0,
        };
        let bytes: [u8; 8] = unsafe { core::mem::transmute(field) };
        assert_eq!(Field::from_bytes(bytes), field);
    }

    #[test]
    fn default_listener_gets_half_of_tcp_rmem_default_in_whole_segments() {
        // 65536 rounded down to 1448-byte segments (1460 less TS), scale 10 from
        // tcp_rmem[2] = 32 MiB, as Linux 6.18 sends it.
        let (window, wscale) =
            initial_window(&default_listener(), &namespace(), 212_992, 1460, true, true);
        assert_eq!((window, wscale), (65_160, 10));
        let (window, wscale) = initial_window(
            &default_listener(),
            &namespace(),
            212_992,
            1460,
            false,
            false,
        );
        assert_eq!((window, wscale), (64_240, 0));
    }

    #[test]
    fn so_rcvbuf_caps_the_scale() {
        // nginx `listen ... rcvbuf=64k`: sk_rcvbuf 131072 with the lock, so the clamp is
        // the full space (65536) and the scale 1, not 10.
        let listener = Listener {
            rcvbuf_locked: true,
            ..default_listener()
        };
        let (window, wscale) = initial_window(&listener, &namespace(), 212_992, 1460, true, true);
        assert_eq!((window, wscale), (65_160, 1));
    }

    #[test]
    fn window_clamp_cuts_window_and_scale() {
        let listener = Listener {
            window_clamp: 20_000,
            ..default_listener()
        };
        let (window, wscale) = initial_window(&listener, &namespace(), 212_992, 1460, true, true);
        assert_eq!((window, wscale), (18_824, 0));
    }

    #[test]
    fn adv_win_scale_before_6_6() {
        let listener = Listener {
            scaling_ratio: 0,
            ..default_listener()
        };
        let mut net = namespace();
        assert_eq!(full_space(&listener, &net), 65_536);
        net.adv_win_scale = -2;
        assert_eq!(full_space(&listener, &net), 32_768);
        net.adv_win_scale = 2;
        assert_eq!(full_space(&listener, &net), 98_304);
    }

    #[test]
    fn signed_windows_workaround_caps_at_32767() {
        let mut net = namespace();
        net.workaround_signed_windows = true;
        let (window, _) = initial_window(&default_listener(), &net, 212_992, 1460, false, false);
        assert_eq!(window, 32_767);
    }

    #[test]
    fn maxseg_and_header_fields() {
        let listener = Listener {
            user_mss: 1000,
            ttl: 7,
            tos: 0x28,
            ..default_listener()
        };
        assert_eq!(mss(&listener, 1460), 1000);
        assert_eq!(mss(&listener, 536), 536);
        assert_eq!(mss(&default_listener(), 1460), 1460);
        assert_eq!(ttl(&listener, &namespace()), 7);
        assert_eq!(ttl(&default_listener(), &namespace()), 64);
        assert_eq!(tos(listener.tos, &namespace(), 0xb9), 0x28);
        let reflect = Namespace {
            reflect_tos: true,
            ..namespace()
        };
        assert_eq!(tos(listener.tos, &reflect, 0xb9), 0xb8);
    }

    #[test]
    fn advmss_follows_the_mtu_within_the_kernels_bounds() {
        assert_eq!(advmss_ipv4(1500), 1460);
        assert_eq!(advmss_ipv4(9000), 8960);
        assert_eq!(advmss_ipv4(200), 256);
        assert_eq!(advmss_ipv4(70_000), 65_495);
        assert_eq!(advmss_ipv6(1500), 1440);
        assert_eq!(advmss_ipv6(1280), 1220);
        assert_eq!(advmss_ipv6(65_575), 65_515);
        assert_eq!(advmss_ipv6(65_576), 65_535);
    }

    #[test]
    fn ilog2_matches_the_kernel() {
        for value in [1u32, 2, 3, 65_535, 65_536, 212_992, 33_554_432, u32::MAX] {
            assert_eq!(ilog2(value), value.ilog2());
        }
        assert_eq!(ilog2(0), 0);
    }

    #[test]
    fn fields_extract_bitfields_and_signs() {
        let userlocks = Field {
            offset: 0,
            size: 1,
            shift: 4,
            bits: 4,
            _pad: 0,
        };
        assert_eq!(userlocks.value(0x2f, false), 2);
        let uc_ttl = Field {
            size: 2,
            ..Field::ABSENT
        };
        assert_eq!(uc_ttl.value(0xffff, true), -1);
        // Linux 6.1's `__s16 hop_limit:9` after 7 unused bits.
        let hop_limit = Field {
            offset: 64,
            size: 2,
            shift: 7,
            bits: 9,
            _pad: 0,
        };
        assert_eq!(hop_limit.value(0xff80, true), -1);
        assert_eq!(hop_limit.value(64 << 7, true), 64);
        assert_eq!(uc_ttl.value(0x0040, true), 64);
    }
}
