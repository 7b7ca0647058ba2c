//! The kernel is the oracle: for each server setting and each client SYN shape, the SYN-ACK
//! the kernel sends itself (`tcp_syncookies=2`, no XDP) and the one that comes back with
//! handshake attached must agree in every byte but the cookie (seq), TSval's clock bits,
//! the checksums and the IPv6 flow label (README: the kernel hashes its label with a
//! secret). Where handshake cannot write the kernel's answer it passes the SYN, and the
//! answer is the kernel's own: equal by construction, and counted.

mod common;

use common::{
    packet::{self, SYN, Tcp},
    protected::PORT,
    raw,
};
use handshake::lab::{
    CLIENT_IFACE, CLIENT_V4, CLIENT_V6, Lab, SERVER_V4, SERVER_V6, echo::EchoServer, run_in,
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

/// Server sysctls, each set on top of `tcp_syncookies=2` in a fresh lab.
const SETTINGS: [&[(&str, &str)]; 6] = [
    &[("net.ipv4.tcp_timestamps", "2")],
    &[("net.ipv4.tcp_timestamps", "0")],
    &[("net.ipv4.tcp_timestamps", "1")],
    &[("net.ipv4.tcp_timestamps", "2"), ("net.ipv4.tcp_sack", "0")],
    &[
        ("net.ipv4.tcp_timestamps", "2"),
        ("net.ipv4.tcp_window_scaling", "0"),
    ],
    &[
        ("net.ipv4.tcp_timestamps", "2"),
        ("net.ipv4.ip_default_ttl", "99"),
        ("net.ipv6.conf.hs-server.hop_limit", "99"),
        ("net.ipv4.tcp_ecn", "1"),
    ],
];

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
        packet::ipv6(CLIENT_V6.octets(), SERVER_V6.octets(), 64, &tcp)
    } else {
        packet::ipv4(CLIENT_V4.octets(), SERVER_V4.octets(), &[], &tcp)
    }
}

/// The SYN-ACK with the bytes that may differ zeroed: IP checksum or flow label, seq,
/// TCP checksum, TSval.
fn comparable(frame: &[u8]) -> Vec<u8> {
    let mut frame = frame.to_vec();
    let tcp = if frame[12..14] == [0x08, 0x00] {
        frame[24..26].fill(0);
        14 + usize::from(frame[14] & 0xf) * 4
    } else {
        frame[15] &= 0xf0;
        frame[16..18].fill(0);
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
    for (setting, sysctls) in SETTINGS.iter().enumerate() {
        let lab = Lab::create("oracle").unwrap();
        lab.sysctl(&lab.server, "net.ipv4.tcp_syncookies", "2")
            .unwrap();
        for (name, value) in *sysctls {
            lab.sysctl(&lab.server, name, value).unwrap();
        }
        let _server = EchoServer::start(&lab.server, PORT).unwrap();
        // The same client ports both times: a cookie SYN-ACK leaves no state behind.
        let first_port = 30000 + 100 * setting as u16;
        let kernel = answers(&lab, first_port);

        let _peer = run_in(&lab.client, || {
            handshake::loader::PassThrough::attach(CLIENT_IFACE)
        })
        .unwrap()
        .unwrap();
        let (handshake, _) = lab.attach_handshake(PORT, false).unwrap();
        let ours = answers(&lab, first_port);
        let counted = handshake.counters().unwrap();

        for ((case, kernel), (_, ours)) in kernel.iter().zip(&ours) {
            let kernel = kernel
                .as_ref()
                .unwrap_or_else(|| panic!("{sysctls:?}, {case}: the kernel sent no SYN-ACK"));
            let ours = ours
                .as_ref()
                .unwrap_or_else(|| panic!("{sysctls:?}, {case}: no SYN-ACK with handshake"));
            assert_eq!(
                comparable(ours),
                comparable(kernel),
                "{sysctls:?}, {case}: handshake's SYN-ACK (left) differs from the kernel's (right)"
            );
        }
        // Every SYN was answered at XDP or left to the kernel, never anything else.
        let syns = 2 * SHAPES.len() as u64;
        assert_eq!(
            counted.get(Counter::SynAckSent) + counted.get(Counter::SynPassedKernelOnly),
            syns,
            "{sysctls:?}: {counted:?}"
        );
        // With tcp_timestamps=1 exactly the SYNs offering TS went to the kernel.
        let offering_ts = SHAPES.iter().filter(|shape| shape.offers_ts).count() as u64;
        let expected_to_kernel = if sysctls.contains(&("net.ipv4.tcp_timestamps", "1")) {
            2 * offering_ts
        } else {
            0
        };
        assert_eq!(
            counted.get(Counter::SynPassedKernelOnly),
            expected_to_kernel,
            "{sysctls:?}"
        );
    }
}
