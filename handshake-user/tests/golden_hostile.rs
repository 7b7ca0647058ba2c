//! Golden packets for what the internet sends besides well-formed SYNs: broken lengths,
//! fragments, odd flags, addresses no answer may go to, bad checksums. Each case states
//! the verdict, the exact output and the one counter it moves.

mod common;

use common::{
    bed::*,
    packet::{self, ACK, CWR, ECE, FIN, PSH, RST, SYN, Tcp, URG},
};
use handshake_common::counters::Counter;

/// Runs `frame` and expects a SYN-ACK for it, whose cookie it returns.
fn assert_answered(bed: &mut Bed, frame: &[u8], window: u16) -> u32 {
    let outcome = bed.run(frame);
    assert_eq!(outcome.verdict, XDP_TX, "verdict for {frame:02x?}");
    assert_counted(&outcome, Counter::SynAckSent);
    let cookie = cookie_of(&outcome.output, 34);
    assert_eq!(outcome.output, syn_ack_v4(cookie, window, &MSS_1460));
    cookie
}

fn assert_dropped_invalid(bed: &mut Bed, frame: &[u8]) {
    let outcome = bed.run(frame);
    assert_eq!(outcome.verdict, XDP_DROP, "verdict for {frame:02x?}");
    assert_eq!(outcome.output, frame);
    assert_counted(&outcome, Counter::SynDroppedInvalid);
}

fn syn_from(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    packet::ipv4(
        src,
        dst,
        &[],
        &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460),
    )
}

#[test]
fn lengths_that_disagree_are_malformed() {
    with_bed("2", false, |bed| {
        let syn = syn_v4(&MSS_1460);
        let mut cases = Vec::new();
        for (byte, value, what) in [
            (14, 0x4f, "IHL 15, past the end"),
            (14, 0x44, "IHL 4"),
            (46, 0xf0, "data offset 15, past the end"),
            (46, 0x40, "data offset 4"),
            (14, 0x65, "IP version 6 in an IPv4 EtherType"),
        ] {
            let mut frame = syn.clone();
            frame[byte] = value;
            packet::refresh_checksums(&mut frame);
            cases.push((frame, what));
        }
        for (total_len, what) in [(45u16, "total length past the frame"), (19, "below IHL")] {
            let mut frame = syn.clone();
            frame[16..18].copy_from_slice(&total_len.to_be_bytes());
            packet::refresh_checksums(&mut frame);
            cases.push((frame, what));
        }
        for (frame, what) in cases {
            let outcome = bed.run(&frame);
            assert_eq!(outcome.verdict, XDP_PASS, "{what}");
            assert_eq!(outcome.output, frame, "{what}");
            assert_counted(&outcome, Counter::Malformed);
        }
    });
}

#[test]
fn ethernet_padding_is_not_part_of_the_segment() {
    with_bed("2", false, |bed| {
        // A 54-byte SYN padded to the 60-byte Ethernet minimum: the checksum covers what the
        // IP header says, and the SYN-ACK leaves the padding behind.
        let mut syn = syn_v4(&[]);
        syn.extend_from_slice(&[0xee; 6]);
        let outcome = bed.run(&syn);
        assert_eq!(outcome.verdict, XDP_TX);
        let cookie = cookie_of(&outcome.output, 34);
        assert_eq!(outcome.output, syn_ack_v4(cookie, 64240, &MSS_1460));
    });
}

#[test]
fn fragments_are_never_answered_but_a_syn_without_df_is() {
    with_bed("2", false, |bed| {
        for (frag, counter) in [
            (0x2000u16, "MF"),
            (0x0001, "offset 8"),
            (0x4001, "DF+offset"),
        ] {
            let tcp = Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460);
            let frame = packet::ipv4_with(CLIENT, SERVER, &[], 7, 64, frag, &tcp);
            let outcome = bed.run(&frame);
            assert_eq!(outcome.verdict, XDP_PASS, "{counter}");
            assert_eq!(outcome.output, frame);
            assert_counted(&outcome, Counter::PassedNotTcp);
        }
        // Without DF (RFC 791 allows it; some tools then refuse to answer): answered, and our
        // SYN-ACK sets DF as Linux's does.
        let tcp = Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460);
        assert_answered(
            bed,
            &packet::ipv4_with(CLIENT, SERVER, &[], 0x1234, 3, 0, &tcp),
            64240,
        );
    });
}

#[test]
fn flags_decide_what_is_a_syn() {
    with_bed("2", false, |bed| {
        // tcp_rcv_state_process in LISTEN: an ACK draws a RST, RST and SYN+FIN are
        // discarded; the kernel judges them all.
        for flags in [
            SYN | FIN,
            SYN | RST,
            SYN | ACK,
            SYN | FIN | RST | ACK,
            FIN,
            0,
        ] {
            let tcp = Tcp {
                flags,
                ..Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460)
            };
            assert_passed_untouched(
                bed,
                &packet::ipv4(CLIENT, SERVER, &[], &tcp),
                Counter::PassedOtherTcp,
            );
        }
        // URG, PSH and the ECN setup bits (RFC 3168 6.1.1) do not make a SYN less of one.
        for flags in [SYN | URG, SYN | PSH, SYN | ECE | CWR] {
            let tcp = Tcp {
                flags,
                ..Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460)
            };
            assert_answered(bed, &packet::ipv4(CLIENT, SERVER, &[], &tcp), 64240);
        }
    });
}

#[test]
fn syn_payload_is_not_echoed() {
    with_bed("2", false, |bed| {
        let payload = [0x5a; 300];
        let tcp = Tcp {
            payload: &payload,
            ..Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460)
        };
        let syn = packet::ipv4(CLIENT, SERVER, &[], &tcp);
        let cookie = assert_answered(bed, &syn, 64240);
        // The kernel's cookie check ignores SYN data; the third ACK still validates.
        assert_eq!(bed.run(&third_ack_v4(cookie)).verdict, XDP_PASS);
    });
}

#[test]
fn syns_from_or_to_where_no_answer_may_go_are_dropped() {
    with_bed("2", false, |bed| {
        for src in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [255, 255, 255, 255],
            SERVER,
        ] {
            assert_dropped_invalid(bed, &syn_from(src, SERVER));
        }
        for dst in [[224, 0, 0, 251], [255, 255, 255, 255], [127, 0, 0, 1]] {
            assert_dropped_invalid(bed, &syn_from(CLIENT, dst));
        }
        let zero_port = packet::ipv4(
            CLIENT,
            SERVER,
            &[],
            &Tcp::syn(0, PROTECTED, CLIENT_SEQ, &MSS_1460),
        );
        assert_dropped_invalid(bed, &zero_port);
        let mut broadcast_mac = syn_v4(&MSS_1460);
        broadcast_mac[..6].copy_from_slice(&[0xff; 6]);
        assert_dropped_invalid(bed, &broadcast_mac);

        let ipv6 = |src: [u8; 16], dst: [u8; 16]| {
            let tcp = Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460);
            packet::ipv6(src, dst, 64, &tcp)
        };
        let mut multicast = SERVER6;
        multicast[0] = 0xff;
        let mut mapped = [0u8; 16];
        mapped[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 2]);
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        for (src, dst) in [
            (multicast, SERVER6),
            (CLIENT6, multicast),
            (mapped, SERVER6),
            (loopback, SERVER6),
            ([0; 16], SERVER6),
            (SERVER6, SERVER6),
        ] {
            assert_dropped_invalid(bed, &ipv6(src, dst));
        }
    });
}

#[test]
fn bad_checksums_are_passed_unanswered() {
    with_bed("2", false, |bed| {
        // Without a payload the sums take the bpf_csum_diff path, with one the bpf_loop walk.
        let payload = [7u8; 33];
        for payload in [&[][..], &payload[..]] {
            let tcp = Tcp {
                payload,
                ..Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460)
            };
            let syn = packet::ipv4(CLIENT, SERVER, &[], &tcp);
            // The IP checksum, the TCP checksum, a header byte, the last byte.
            for byte in [24, 50, 41, syn.len() - 1] {
                let mut frame = syn.clone();
                frame[byte] ^= 0x01;
                assert_passed_untouched(bed, &frame, Counter::SynPassedBadChecksum);
            }
            let mut ipv6 = packet::ipv6(CLIENT6, SERVER6, 64, &tcp);
            let last = ipv6.len() - 1;
            ipv6[last] ^= 0x80;
            assert_passed_untouched(bed, &ipv6, Counter::SynPassedBadChecksum);
            ipv6[last] ^= 0x80;
            ipv6[22 + 8] ^= 0x04; // a source address bit: only the pseudo-header sees it
            assert_passed_untouched(bed, &ipv6, Counter::SynPassedBadChecksum);
        }
        // A bad checksum where nothing listens still goes to the kernel as such.
        let mut no_listener = packet::ipv4(
            CLIENT,
            SERVER,
            &[],
            &Tcp::syn(CLIENT_PORT, NO_LISTENER, CLIENT_SEQ, &MSS_1460),
        );
        no_listener[50] ^= 1;
        assert_passed_untouched(bed, &no_listener, Counter::SynPassedNoListener);
    });
}

#[test]
fn ipv6_lengths_and_extension_headers() {
    with_bed("2", false, |bed| {
        let tcp = Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460);
        let syn = packet::ipv6(CLIENT6, SERVER6, 64, &tcp);
        // Payload length 0 with a TCP next header: no room for TCP. With a Hop-by-Hop
        // header next (a jumbogram, RFC 2675): an extension header, the kernel's.
        let mut zero = syn.clone();
        zero[18..20].copy_from_slice(&[0, 0]);
        assert_passed_untouched(bed, &zero, Counter::Malformed);
        zero[20] = 0;
        assert_passed_untouched(bed, &zero, Counter::PassedNotTcp);
        let mut past_end = syn.clone();
        past_end[18..20].copy_from_slice(&25u16.to_be_bytes());
        assert_passed_untouched(bed, &past_end, Counter::Malformed);
        for next_header in [0u8, 43, 44, 60] {
            let mut extension = syn.clone();
            extension[20] = next_header;
            assert_passed_untouched(bed, &extension, Counter::PassedNotTcp);
        }
    });
}
