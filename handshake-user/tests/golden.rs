//! Golden packets through BPF_PROG_TEST_RUN: an input frame, the verdict, the exact output
//! frame (checksums recomputed independently in `common::packet`) and the exact counters.
//!
//! The program looks up listeners in the namespace of the thread that runs the test, so
//! each test runs inside a lab's server namespace (see `common::bed`).

mod common;

use std::{net::SocketAddr, time::Duration};

use common::{
    bed::*,
    packet::{self, ACK, FIN, LINUX_SYN_OPTIONS, RST, SYN, Tcp},
};
use handshake::{lab::SERVER_V4, local_table::HostRoutes};
use handshake_common::counters::Counter;

#[test]
fn ipv4_syn_without_options_gets_mss_syn_ack_and_its_cookie_validates() {
    with_bed("2", false, |bed| {
        let syn = syn_v4(&[]);
        let outcome = bed.run(&syn);
        assert_eq!(outcome.verdict, XDP_TX);
        assert_counted(&outcome, Counter::SynAckSent);
        // No MSS from the client: the cookie encodes 536 (RFC 9293 3.7.1); the window is
        // the listener's 65536 bytes of space in whole segments of our MSS (1460), as the
        // kernel's own SYN-ACK has it. 4 bytes longer: the MSS option.
        let cookie = cookie_of(&outcome.output, 34);
        assert_eq!(outcome.output, syn_ack_v4(cookie, 64240, &MSS_1460));
        assert_eq!(outcome.output.len(), syn.len() + 4);

        let valid = bed.run(&third_ack_v4(cookie));
        assert_eq!(valid.verdict, XDP_PASS);
        assert_counted(&valid, Counter::AckValidated);

        let forged = bed.run(&third_ack_v4(cookie ^ 0x00ff_0000));
        assert_eq!(forged.verdict, XDP_DROP);
        assert_counted(&forged, Counter::AckDroppedForged);
    });
}

#[test]
fn linux_syn_gets_mss_only_with_tcp_timestamps_0_and_goes_to_the_kernel_with_1() {
    with_bed("2", false, |bed| {
        let syn = syn_v4(&LINUX_SYN_OPTIONS);
        let outcome = bed.run(&syn);
        assert_eq!(outcome.verdict, XDP_TX);
        assert_counted(&outcome, Counter::SynAckSent);
        let cookie = cookie_of(&outcome.output, 34);
        assert_eq!(outcome.output, syn_ack_v4(cookie, 64240, &MSS_1460));
        assert_eq!(outcome.output.len(), syn.len() - 16);
        assert_eq!(bed.run(&third_ack_v4(cookie)).verdict, XDP_PASS);
        // tcp_timestamps=1, set while loaded: the kernel's TSval would hold its secret
        // offset.
        bed.sysctl("net.ipv4.tcp_timestamps", "1");
        assert_passed_untouched(bed, &syn, Counter::SynPassedKernelOnly);
        // A SYN without timestamps is still answered.
        assert_eq!(bed.run(&syn_v4(&MSS_1460)).verdict, XDP_TX);
    });
}

fn monotonic_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1000 + now.tv_nsec as u64 / 1_000_000
}

#[test]
fn ipv4_syn_in_timestamps_mode_carries_sack_ts_and_wscale() {
    with_bed("2", true, |bed| {
        let before_ms = monotonic_ms();
        let outcome = bed.run(&syn_v4(&LINUX_SYN_OPTIONS));
        let after_ms = monotonic_ms();
        assert_eq!(outcome.verdict, XDP_TX);
        assert_counted(&outcome, Counter::SynAckSent);
        let tsval = u32::from_be_bytes(outcome.output[62..66].try_into().unwrap());
        // cookie_init_timestamp: low 6 bits = client wscale 7 | SACK (0x10); the rest is
        // the millisecond clock, at most 64 ms behind.
        assert_eq!(tsval & 0x3f, 0x17);
        assert!(
            u64::from(tsval) + 64 >= before_ms & 0xffff_ffff
                && u64::from(tsval) <= after_ms & 0xffff_ffff,
            "TSval {tsval} is not the monotonic clock ({before_ms}..{after_ms} ms)"
        );
        let cookie = cookie_of(&outcome.output, 34);
        let [t0, t1, t2, t3] = tsval.to_be_bytes();
        let options = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, t0, t1, t2, t3, 1, 2, 3, 4, 1, 3, 3, bed.wscale,
        ];
        // With timestamps the segments the window is cut in are 12 bytes shorter (1448).
        assert_eq!(outcome.output, syn_ack_v4(cookie, 65160, &options));
    });
}

#[test]
fn timestamps_mode_without_client_timestamps_sends_mss_only() {
    with_bed("2", true, |bed| {
        let options = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2];
        let outcome = bed.run(&syn_v4(&options));
        assert_eq!(outcome.verdict, XDP_TX);
        let cookie = cookie_of(&outcome.output, 34);
        assert_eq!(outcome.output, syn_ack_v4(cookie, 64240, &MSS_1460));
    });
}

#[test]
fn syns_only_the_kernel_can_answer_pass_untouched() {
    with_bed("2", false, |bed| {
        // IHL 6: one 4-byte option word of NOPs then EOL. The kernel echoes IPv4 options
        // in its SYN-ACK (or refuses source routes); ours would carry none.
        let ip_options = packet::ipv4(
            CLIENT,
            SERVER,
            &[1, 1, 1, 0],
            &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460),
        );
        assert_passed_untouched(bed, &ip_options, Counter::SynPassedKernelOnly);
        // TCP-MD5 (a BGP peer's SYN), TCP-AO and MPTCP's MP_CAPABLE, each after MSS.
        let mut md5 = [0u8; 24];
        md5[..6].copy_from_slice(&[2, 4, 5, 0xb4, 19, 18]);
        let ao = [2, 4, 5, 0xb4, 29, 4, 1, 2];
        let mptcp = [2, 4, 5, 0xb4, 30, 12, 0, 0x81, 0, 0, 0, 0, 0, 0, 0, 0];
        for options in [&md5[..], &ao[..], &mptcp[..]] {
            // Padded with EOL to a word.
            let mut padded = options.to_vec();
            padded.resize(options.len().div_ceil(4) * 4, 0);
            assert_passed_untouched(bed, &syn_v4(&padded), Counter::SynPassedKernelOnly);
        }
    });
}

#[test]
fn syns_for_another_host_pass_untouched() {
    with_bed("2", false, |bed| {
        // A neighbour's MAC, as a promiscuous port or a bridge member sees it.
        let mut syn = syn_v4(&MSS_1460);
        syn[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
        assert_passed_untouched(bed, &syn, Counter::SynPassedNotForHost);
        // Our MAC, but a destination this host routes (a neighbour's address, the subnet's
        // directed broadcast, an address on no interface): the kernel forwards or drops
        // them, though the wildcard listener has the port.
        let to = |dst: [u8; 4]| {
            packet::ipv4(
                CLIENT,
                dst,
                &[],
                &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460),
            )
        };
        for dst in [[198, 18, 0, 3], [198, 18, 0, 255], [198, 19, 5, 7]] {
            assert_passed_untouched(bed, &to(dst), Counter::SynPassedNotForHost);
        }
        let neighbour_v6 = packet::ipv6(
            CLIENT6,
            [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3],
            64,
            &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460),
        );
        assert_passed_untouched(bed, &neighbour_v6, Counter::SynPassedNotForHost);
        // Made local (AnyIP, as `ip route add local PREFIX dev lo` does): answered once the
        // program's copy of the local table has it, as `handshake run` keeps it.
        // (The test thread runs in the bed's namespace, and so does a command it starts.)
        let added = std::process::Command::new("ip")
            .args(["route", "add", "local", "198.19.5.0/24", "dev", "lo"])
            .status()
            .unwrap();
        assert!(added.success());
        assert_passed_untouched(bed, &to([198, 19, 5, 7]), Counter::SynPassedNotForHost);
        let table = HostRoutes::read().unwrap().seen_from(None);
        bed.handshake.maps.local_routes.replace(&table).unwrap();
        let outcome = bed.run(&to([198, 19, 5, 7]));
        assert_eq!(outcome.verdict, XDP_TX);
        assert_counted(&outcome, Counter::SynAckSent);
        // The subnet's broadcast route stays what it was.
        assert_passed_untouched(bed, &to([198, 18, 0, 255]), Counter::SynPassedNotForHost);
    });
}

#[test]
fn forged_acks_of_another_hosts_handshakes_pass_during_a_flood() {
    with_bed("2", false, |bed| {
        // Every CPU is in a flood in this bed: our forged ACKs are dropped...
        let forged = third_ack_v4(0x1234_5678);
        let outcome = bed.run(&forged);
        assert_eq!(outcome.verdict, XDP_DROP);
        assert_counted(&outcome, Counter::AckDroppedForged);
        // ...but a neighbour's (its MAC, on a bridge member) or one this host routes
        // cannot verify against our listener and is not ours to drop.
        let mut neighbours = forged.clone();
        neighbours[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
        let mut routed = forged.clone();
        routed[30..34].copy_from_slice(&[198, 18, 0, 3]);
        packet::refresh_checksums(&mut routed);
        for ack in [neighbours, routed] {
            assert_passed_untouched(bed, &ack, Counter::AckPassedOther);
        }
    });
}

#[test]
fn stray_acks_pass_outside_a_flood_and_drop_during_one() {
    with_bed("2", false, |bed| {
        // The flood state is per CPU: keep every run on one.
        common::pin_to_cpu_0();
        // No SYN-ACK sent yet: a stray ACK goes to the kernel, which RSTs it.
        bed.reconfigure(|config| config.flood_syn_acks = 1000);
        let stray = third_ack_v4(0x1234_5678);
        assert_passed_untouched(bed, &stray, Counter::AckPassedNoFlood);
        // Counted as a flood from the first SYN-ACK on.
        bed.reconfigure(|config| config.flood_syn_acks = 1);
        let outcome = bed.run(&syn_v4(&MSS_1460));
        assert_eq!(outcome.verdict, XDP_TX);
        let outcome = bed.run(&stray);
        assert_counted(&outcome, Counter::AckDroppedForged);
        assert_eq!(outcome.verdict, XDP_DROP);
        // The flood is per port, as the kernel checks cookies per listener: a stray ACK to
        // another protected port, whose listener no SYN-ACK was sent for, still goes to the
        // kernel.
        const OTHER: u16 = 8081;
        let _other = std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, OTHER)).unwrap();
        bed.handshake
            .set_ports(&[PROTECTED, NO_LISTENER, OTHER])
            .unwrap();
        let tcp = Tcp {
            source_port: CLIENT_PORT,
            dest_port: OTHER,
            seq: CLIENT_SEQ.wrapping_add(1),
            ack: 0x1234_5679,
            flags: ACK,
            window: 502,
            options: &[],
            payload: &[],
        };
        let stray_other = packet::ipv4(CLIENT, SERVER, &[], &tcp);
        assert_passed_untouched(bed, &stray_other, Counter::AckPassedNoFlood);
    });
}

#[test]
fn ipv6_syn_with_and_without_options() {
    with_bed("2", false, |bed| {
        for options in [&LINUX_SYN_OPTIONS[..], &[][..]] {
            let syn = packet::ipv6(
                CLIENT6,
                SERVER6,
                64,
                &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, options),
            );
            let outcome = bed.run(&syn);
            assert_eq!(outcome.verdict, XDP_TX, "SYN with options {options:?}");
            assert_counted(&outcome, Counter::SynAckSent);
            let cookie = cookie_of(&outcome.output, 54);
            // 65536 bytes of listener space in whole segments of our IPv6 MSS (1440).
            let window = 64800;
            let tcp = Tcp {
                source_port: PROTECTED,
                dest_port: CLIENT_PORT,
                seq: cookie,
                ack: CLIENT_SEQ + 1,
                flags: SYN | ACK,
                window,
                options: &[2, 4, 0x05, 0xa0],
                payload: &[],
            };
            assert_eq!(outcome.output, packet::ipv6(SERVER6, CLIENT6, 64, &tcp));

            let ack = Tcp {
                source_port: CLIENT_PORT,
                dest_port: PROTECTED,
                seq: CLIENT_SEQ + 1,
                ack: cookie.wrapping_add(1),
                flags: ACK,
                window: 502,
                options: &[],
                payload: &[],
            };
            let valid = bed.run(&packet::ipv6(CLIENT6, SERVER6, 64, &ack));
            assert_eq!(valid.verdict, XDP_PASS);
            assert_counted(&valid, Counter::AckValidated);
            // Not cookie + 2: the kernel adds the MSS index to the cookie rather than hashing
            // it, so a neighbouring value can decode as another valid MSS.
            let forged = Tcp {
                ack: (cookie ^ 0x00ff_0000).wrapping_add(1),
                ..ack
            };
            let forged = bed.run(&packet::ipv6(CLIENT6, SERVER6, 64, &forged));
            assert_eq!(forged.verdict, XDP_DROP);
            assert_counted(&forged, Counter::AckDroppedForged);
        }
    });
}

#[test]
fn syns_the_kernel_must_answer_pass_untouched() {
    with_bed("2", false, |bed| {
        let unprotected = packet::ipv4(
            CLIENT,
            SERVER,
            &[],
            &Tcp::syn(CLIENT_PORT, UNPROTECTED, CLIENT_SEQ, &MSS_1460),
        );
        assert_passed_untouched(bed, &unprotected, Counter::PassedUnprotected);
        let no_listener = packet::ipv4(
            CLIENT,
            SERVER,
            &[],
            &Tcp::syn(CLIENT_PORT, NO_LISTENER, CLIENT_SEQ, &MSS_1460),
        );
        assert_passed_untouched(bed, &no_listener, Counter::SynPassedNoListener);
    });
}

#[test]
fn without_cookie_mode_syns_go_to_the_kernel() {
    with_bed("1", false, |bed| {
        assert_passed_untouched(bed, &syn_v4(&LINUX_SYN_OPTIONS), Counter::SynPassedNoCookie);
    });
}

#[test]
fn other_tcp_to_protected_ports_passes() {
    with_bed("2", false, |bed| {
        for flags in [RST, FIN, SYN | ACK, SYN | RST, SYN | FIN, 0] {
            let tcp = Tcp {
                flags,
                ..Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &[])
            };
            assert_passed_untouched(
                bed,
                &packet::ipv4(CLIENT, SERVER, &[], &tcp),
                Counter::PassedOtherTcp,
            );
        }
    });
}

#[test]
fn not_tcp_passes() {
    with_bed("2", false, |bed| {
        let mut udp = syn_v4(&[]);
        udp[23] = 17;
        assert_passed_untouched(bed, &udp, Counter::PassedNotTcp);
        let mut fragment = syn_v4(&[]);
        fragment[20] = 0x20; // More Fragments
        assert_passed_untouched(bed, &fragment, Counter::PassedNotTcp);
        let mut arp = packet::ethernet(packet::SERVER_MAC, packet::CLIENT_MAC, [0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        assert_passed_untouched(bed, &arp, Counter::PassedNotTcp);
        let mut ipv6_extension = packet::ipv6(
            CLIENT6,
            SERVER6,
            64,
            &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &[]),
        );
        ipv6_extension[20] = 0; // Hop-by-Hop Options header next
        assert_passed_untouched(bed, &ipv6_extension, Counter::PassedNotTcp);
    });
}

#[test]
fn truncated_frames_are_malformed_and_pass() {
    with_bed("2", false, |bed| {
        for syn in [
            syn_v4(&LINUX_SYN_OPTIONS),
            packet::ipv6(
                CLIENT6,
                SERVER6,
                64,
                &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &LINUX_SYN_OPTIONS),
            ),
        ] {
            // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
            for len in 14..syn.len() {
                let outcome = bed.run(&syn[..len]);
                assert_eq!(outcome.verdict, XDP_PASS, "truncated to {len} bytes");
                assert_eq!(outcome.output, &syn[..len]);
                assert_counted(&outcome, Counter::Malformed);
            }
        }
        let mut bad_offset = syn_v4(&[]);
        bad_offset[46] = 4 << 4; // data offset 4 < 5
        assert_passed_untouched(bed, &bad_offset, Counter::Malformed);
        let mut bad_ihl = syn_v4(&[]);
        bad_ihl[14] = 0x44;
        assert_passed_untouched(bed, &bad_ihl, Counter::Malformed);
    });
}

#[test]
fn established_connections_pass() {
    with_bed("2", false, |bed| {
        // A real connection, made inside the namespace (the program is not attached here).
        let server = SocketAddr::new(SERVER_V4.into(), PROTECTED);
        let stream = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(3)).unwrap();
        let local = stream.local_addr().unwrap();
        let std::net::IpAddr::V4(local_ip) = local.ip() else {
            panic!("IPv4 expected")
        };
        let tcp = Tcp {
            source_port: local.port(),
            dest_port: PROTECTED,
            seq: 1,
            ack: 1,
            flags: ACK,
            window: 502,
            options: &[],
            payload: b"data",
        };
        let frame = packet::ipv4(local_ip.octets(), SERVER, &[], &tcp);
        assert_passed_untouched(bed, &frame, Counter::PassedEstablished);
        drop(stream);
    });
}
