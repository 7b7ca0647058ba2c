//! The kernel is the oracle: for each server configuration (sysctls, the listener's
//! socket options, the MTU) and each client SYN shape, the SYN-ACK the kernel sends itself
//! (`tcp_syncookies=2`, no XDP) and the one that comes back with handshake attached must
//! agree in every byte but the cookie (seq), TSval's clock bits, the checksums and the
//! IPv6 flow label where the kernel hashes it with a secret (README). The sysctls and the
//! MTU are changed after handshake attached: it must follow them. Where handshake cannot
//! write the kernel's answer it passes the SYN, and the answer is the kernel's own: equal
//! by construction, and counted.

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use common::{
    packet::{self, SYN, Tcp},
    protected::PORT,
    raw,
    tcp_info::{self, TcpInfo},
};
use handshake::lab::{
    CLIENT_IFACE, CLIENT_V4, CLIENT_V6, Lab, SERVER_IFACE, SERVER_V4, SERVER_V6, echo::EchoServer,
    run_in,
};
use handshake_common::counters::Counter;

/// TCP's ECE and CWR flags: both in a SYN ask for ECN (RFC 3168 6.1.1).
const ECE: u8 = 0x40;
const CWR: u8 = 0x80;

struct Shape {
    name: &'static str,
    options: &'static [u8],
    flags: u8,
    offers_ts: bool,
}

/// What clients send: Linux, Windows and bare SYNs, and the option mixes between.
const SHAPES: [Shape; 8] = [
    Shape {
        name: "Linux (MSS, SACK, TS, WS 7)",
        options: &[
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7,
        ],
        flags: SYN,
        offers_ts: true,
    },
    Shape {
        name: "no options",
        options: &[],
        flags: SYN,
        offers_ts: false,
    },
    Shape {
        name: "MSS 1400 only",
        options: &[2, 4, 5, 0x78],
        flags: SYN,
        offers_ts: false,
    },
    Shape {
        name: "TS and WS 14",
        options: &[
            2, 4, 5, 0xb4, 1, 3, 3, 14, 1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0,
        ],
        flags: SYN,
        offers_ts: true,
    },
    Shape {
        name: "SACK without TS",
        options: &[2, 4, 5, 0xb4, 1, 1, 4, 2],
        flags: SYN,
        offers_ts: false,
    },
    Shape {
        name: "TS without SACK or WS",
        options: &[2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0],
        flags: SYN,
        offers_ts: true,
    },
    Shape {
        name: "Windows (MSS, WS 8, SACK)",
        options: &[2, 4, 5, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2],
        flags: SYN,
        offers_ts: false,
    },
    Shape {
        name: "Linux asking for ECN",
        options: &[
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 7,
        ],
        flags: SYN | ECE | CWR,
        offers_ts: true,
    },
];

/// A socket option on the listener: (level, name, value).
type SockOpt = (i32, i32, i32);

/// What changes while handshake is attached: the program must follow it.
#[derive(Clone, Copy)]
enum Change {
    Sysctl(&'static str, &'static str),
    /// The server interface's MTU.
    Mtu(u32),
}

/// One server configuration: sysctls set before anything starts, socket options on the
/// listener, and changes made while handshake is attached (the kernel's own answers are
/// captured with them in place too).
struct Case {
    name: &'static str,
    before: &'static [(&'static str, &'static str)],
    listener: &'static [SockOpt],
    while_attached: &'static [Change],
    /// Which SYNs (shape, IPv6?) only the kernel can answer: they must pass, counted
    /// `syn_passed_kernel_only`.
    to_kernel: fn(&Shape, bool) -> bool,
    /// The SYN-ACK's IPv6 flow label is the SYN's (otherwise the kernel's is a hash with
    /// a secret: README).
    reflects_flow_label: bool,
}

const TS2: Change = Change::Sysctl("net.ipv4.tcp_timestamps", "2");

fn none(_: &Shape, _: bool) -> bool {
    false
}

const CASES: &[Case] = &[
    Case {
        name: "tcp_timestamps=2",
        before: &[],
        listener: &[],
        while_attached: &[TS2],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "tcp_timestamps=0",
        before: &[],
        listener: &[],
        while_attached: &[Change::Sysctl("net.ipv4.tcp_timestamps", "0")],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "tcp_timestamps=1",
        before: &[("net.ipv4.tcp_timestamps", "2")],
        listener: &[],
        while_attached: &[Change::Sysctl("net.ipv4.tcp_timestamps", "1")],
        to_kernel: |shape, _| shape.offers_ts,
        reflects_flow_label: false,
    },
    Case {
        name: "tcp_sack=0",
        before: &[],
        listener: &[],
        while_attached: &[TS2, Change::Sysctl("net.ipv4.tcp_sack", "0")],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "tcp_window_scaling=0",
        before: &[],
        listener: &[],
        while_attached: &[TS2, Change::Sysctl("net.ipv4.tcp_window_scaling", "0")],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "TTL, hop limit and ECN",
        // The interface's hop limit is read at attach (README).
        before: &[("net.ipv6.conf.hs-server.hop_limit", "99")],
        listener: &[],
        while_attached: &[
            TS2,
            Change::Sysctl("net.ipv4.ip_default_ttl", "99"),
            Change::Sysctl("net.ipv4.tcp_ecn", "1"),
        ],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "tcp_rmem, tcp_workaround_signed_windows, tcp_adv_win_scale",
        before: &[],
        listener: &[],
        while_attached: &[
            TS2,
            Change::Sysctl("net.ipv4.tcp_rmem", "4096 131072 1048576"),
            Change::Sysctl("net.ipv4.tcp_workaround_signed_windows", "1"),
            Change::Sysctl("net.ipv4.tcp_adv_win_scale", "-2"),
        ],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "SO_RCVBUF 64 KiB (nginx rcvbuf=64k)",
        before: &[],
        listener: &[(libc::SOL_SOCKET, libc::SO_RCVBUF, 65536)],
        while_attached: &[TS2],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "TCP_WINDOW_CLAMP 20000",
        before: &[],
        listener: &[(libc::IPPROTO_TCP, libc::TCP_WINDOW_CLAMP, 20000)],
        while_attached: &[TS2],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "TCP_MAXSEG 1000",
        before: &[],
        listener: &[(libc::IPPROTO_TCP, libc::TCP_MAXSEG, 1000)],
        while_attached: &[TS2],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "IP_TOS, IPV6_TCLASS, IP_TTL, IPV6_UNICAST_HOPS",
        before: &[],
        listener: &[
            (libc::IPPROTO_IP, libc::IP_TOS, 0x28),
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 0x48),
            (libc::IPPROTO_IP, libc::IP_TTL, 7),
            (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 9),
        ],
        while_attached: &[TS2],
        to_kernel: none,
        reflects_flow_label: false,
    },
    Case {
        name: "tcp_reflect_tos and reflected flow labels",
        // Read when the listener is created (`inet6_create`).
        before: &[("net.ipv6.flowlabel_reflect", "1")],
        listener: &[(libc::IPPROTO_IP, libc::IP_TOS, 0x29)],
        while_attached: &[TS2, Change::Sysctl("net.ipv4.tcp_reflect_tos", "1")],
        to_kernel: none,
        reflects_flow_label: true,
    },
    Case {
        name: "IP_MTU_DISCOVER IP_PMTUDISC_DONT",
        before: &[],
        listener: &[(
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        )],
        while_attached: &[TS2],
        // Its IPv4 SYN-ACK has no DF and a random IP ID.
        to_kernel: |_, v6| !v6,
        reflects_flow_label: false,
    },
    Case {
        name: "MTU 1500 changed to 1400",
        before: &[],
        listener: &[],
        while_attached: &[TS2, Change::Mtu(1400)],
        to_kernel: none,
        reflects_flow_label: false,
    },
];

/// The DSCP (EF) and flow label every test SYN carries, so that reflecting them shows.
const SYN_TOS: u8 = 0xb8;
const SYN_FLOW_LABEL: u32 = 0x9_abcd;

fn syn(shape: &Shape, v6: bool, source_port: u16) -> Vec<u8> {
    let mut options = shape.options.to_vec();
    options.resize(options.len().div_ceil(4) * 4, 0);
    let tcp = Tcp {
        flags: shape.flags,
        ..Tcp::syn(
            source_port,
            PORT,
            0x0101_0101u32.wrapping_mul(u32::from(source_port)),
            &options,
        )
    };
    if v6 {
        let mut frame = packet::ipv6(CLIENT_V6.octets(), SERVER_V6.octets(), 64, &tcp);
        // Neither is in the TCP pseudo-header: no checksum changes.
        let word = 6 << 28 | u32::from(SYN_TOS) << 20 | SYN_FLOW_LABEL;
        frame[14..18].copy_from_slice(&word.to_be_bytes());
        frame
    } else {
        let mut frame = packet::ipv4(CLIENT_V4.octets(), SERVER_V4.octets(), &[], &tcp);
        frame[15] = SYN_TOS;
        frame[24..26].fill(0);
        let sum = ipv4_header_checksum(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        frame
    }
}

fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|word| u32::from(u16::from_be_bytes([word[0], word[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The SYN-ACK with the bytes that may differ zeroed: IP checksum, seq, TCP checksum,
/// TSval, and the IPv6 flow label unless the listener reflects it.
fn comparable(frame: &[u8], flow_label: bool) -> Vec<u8> {
    let mut frame = frame.to_vec();
    let tcp = if frame[12..14] == [0x08, 0x00] {
        frame[24..26].fill(0);
        14 + usize::from(frame[14] & 0xf) * 4
    } else {
        if !flow_label {
            frame[15] &= 0xf0;
            frame[16..18].fill(0);
        }
        54
    };
    frame[tcp + 4..tcp + 8].fill(0);
    frame[tcp + 16..tcp + 18].fill(0);
    let end = tcp + usize::from(frame[tcp + 12] >> 4) * 4;
    let mut at = tcp + 20;
    while at + 1 < end {
        match frame[at] {
            0 => break,
            1 => at += 1,
            kind => {
                let size = usize::from(frame[at + 1]).max(2);
                if kind == 8 && size == 10 && at + 6 <= end {
                    frame[at + 2..at + 6].fill(0);
                }
                at += size;
            }
        }
    }
    frame
}

/// The SYN-ACK each shape gets over both families, by source port.
fn answers(lab: &Lab, first_port: u16) -> Vec<(String, Option<Vec<u8>>)> {
    let mut answers = Vec::new();
    for (index, shape) in SHAPES.iter().enumerate() {
        for v6 in [false, true] {
            let port = first_port + 2 * index as u16 + u16::from(v6);
            let family = if v6 { "IPv6" } else { "IPv4" };
            let reply = raw::syn_ack_for(lab, syn(shape, v6, port));
            answers.push((format!("{} over {family}", shape.name), reply));
        }
    }
    answers
}

#[test]
fn syn_acks_equal_the_kernels_own_field_for_field() {
    common::require_root();
    for (index, case) in CASES.iter().enumerate() {
        // The same client ports both times: a cookie SYN-ACK leaves no state behind.
        check(case, 30000 + 100 * index as u16);
    }
}

fn check(case: &Case, first_port: u16) {
    let name = case.name;
    let lab = Lab::create("oracle").unwrap();
    lab.sysctl(&lab.server, "net.ipv4.tcp_syncookies", "2")
        .unwrap();
    for (sysctl, value) in case.before {
        lab.sysctl(&lab.server, sysctl, value).unwrap();
    }
    let options = case.listener;
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let record = accepted.clone();
    let _server = EchoServer::start_with(
        &lab.server,
        PORT,
        move |listener| {
            options
                .iter()
                .try_for_each(|&(level, option, value)| set_option(listener, level, option, value))
        },
        move |stream| record.lock().unwrap().push(TcpInfo::of(stream)),
    )
    .unwrap();
    // The kernel's answers with every change in place, then the changes undone.
    let undo: Vec<Change> = case
        .while_attached
        .iter()
        .map(|change| apply(&lab, *change))
        .collect();
    let kernel = answers(&lab, first_port);
    for change in undo.into_iter().rev() {
        apply(&lab, change);
    }

    let _peer = run_in(&lab.client, || {
        handshake::loader::PassThrough::attach(CLIENT_IFACE)
    })
    .unwrap()
    .unwrap();
    let (handshake, _) = lab.attach_handshake(PORT, false).unwrap();
    for change in case.while_attached {
        apply(&lab, *change);
    }
    let ours = answers(&lab, first_port);
    let counted = handshake.counters().unwrap();

    for ((what, kernel), (_, ours)) in kernel.iter().zip(&ours) {
        let kernel = kernel
            .as_ref()
            .unwrap_or_else(|| panic!("{name}, {what}: the kernel sent no SYN-ACK"));
        let ours = ours
            .as_ref()
            .unwrap_or_else(|| panic!("{name}, {what}: no SYN-ACK with handshake"));
        assert_eq!(
            comparable(ours, case.reflects_flow_label),
            comparable(kernel, case.reflects_flow_label),
            "{name}, {what}: handshake's SYN-ACK (left) differs from the kernel's (right)"
        );
    }
    // Real connections from the client's own stack carry 2 MB each way and negotiate
    // what they would with the kernel's own cookies, on both sides.
    let through_handshake = connections(&lab, &accepted);
    let connected = handshake.counters().unwrap().since(&counted);
    drop(handshake);
    let through_kernel = connections(&lab, &accepted);
    assert_eq!(
        through_handshake, through_kernel,
        "{name}: (client, server) TCP_INFO over IPv4 and IPv6, through handshake (left) and through the kernel's own cookies (right)"
    );
    let answered = [false, true]
        .into_iter()
        .filter(|&v6| !(case.to_kernel)(&SHAPES[0], v6))
        .count() as u64;
    assert_eq!(
        [
            Counter::SynAckSent,
            Counter::SynPassedKernelOnly,
            Counter::AckValidated
        ]
        .map(|counter| connected.get(counter)),
        // With tcp_syncookies=2 the kernel's answers are cookies too: every ACK validates.
        [answered, 2 - answered, 2],
        "{name}: the connections' SYNs: {connected:?}"
    );

    // Every SYN was answered at XDP or left to the kernel, and exactly those the kernel
    // alone can answer went to it.
    let to_kernel = SHAPES
        .iter()
        .flat_map(|shape| {
            [
                (case.to_kernel)(shape, false),
                (case.to_kernel)(shape, true),
            ]
        })
        .filter(|&to_kernel| to_kernel)
        .count() as u64;
    let syns = 2 * SHAPES.len() as u64;
    assert_eq!(
        (
            counted.get(Counter::SynAckSent),
            counted.get(Counter::SynPassedKernelOnly)
        ),
        (syns - to_kernel, to_kernel),
        "{name}: {counted:?}"
    );
}

/// One connection over each family: what the client's and the server's side negotiated.
fn connections(lab: &Lab, accepted: &Arc<Mutex<Vec<TcpInfo>>>) -> Vec<(TcpInfo, TcpInfo)> {
    let mut negotiated = Vec::new();
    for server in [IpAddr::V4(SERVER_V4), IpAddr::V6(SERVER_V6)] {
        let client = run_in(&lab.client, move || {
            tcp_info::echo(SocketAddr::new(server, PORT), 2 << 20)
        })
        .unwrap();
        // The server records a connection before it greets, and the client has read
        // the greeting.
        let server = accepted.lock().unwrap().pop().expect("the server accepted");
        negotiated.push((client, server));
    }
    negotiated
}

/// Makes `change` in the server namespace; returns the change that undoes it.
fn apply(lab: &Lab, change: Change) -> Change {
    match change {
        Change::Sysctl(name, value) => {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            let old = run_in(&lab.server, move || std::fs::read_to_string(path))
                .unwrap()
                .unwrap();
            lab.sysctl(&lab.server, name, value).unwrap();
            Change::Sysctl(name, String::leak(old.trim().replace('\t', " ")))
        }
        Change::Mtu(mtu) => {
            let old = run_in(&lab.server, || handshake::interface::mtu(SERVER_IFACE))
                .unwrap()
                .unwrap();
            let mtu = mtu.to_string();
            lab.exec(
                &lab.server,
                &["ip", "link", "set", SERVER_IFACE, "mtu", &mtu],
            )
            .unwrap();
            Change::Mtu(old)
        }
    }
}

fn set_option(
    listener: &std::net::TcpListener,
    level: i32,
    option: i32,
    value: i32,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let result = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            level,
            option,
            (&value as *const i32).cast(),
            size_of::<i32>() as u32,
        )
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
