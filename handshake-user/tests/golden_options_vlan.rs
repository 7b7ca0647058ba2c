//! Golden packets for odd TCP options (in timestamps mode, where the program reads them)
//! and for VLAN-tagged frames, which are answered with their tags unchanged.

mod common;

use common::{
    bed::*,
    packet::{self, ACK, Tcp, c_tag, s_tag, tagged},
};
use handshake_common::counters::Counter;

/// A SYN with `options` gets an MSS-only SYN-ACK. Its window is 64240 whatever the
/// client's MSS: the kernel cuts it from the listener's space in whole segments of *our*
/// MSS (`tcp_openreq_init_rwin`), as kernel_oracle.rs checks against the kernel itself.
fn assert_mss_only(bed: &mut Bed, options: &[u8], window: u16, what: &str) {
    let outcome = bed.run(&syn_v4(options));
    assert_eq!(outcome.verdict, XDP_TX, "{what}");
    assert_counted(&outcome, Counter::SynAckSent);
    let cookie = cookie_of(&outcome.output, 34);
    assert_eq!(
        outcome.output,
        syn_ack_v4(cookie, window, &MSS_1460),
        "{what}"
    );
}

#[test]
fn odd_options_get_a_well_formed_syn_ack() {
    with_bed("2", true, |bed| {
        let mut many_nops = [1u8; 40];
        many_nops[36..].copy_from_slice(&MSS_1460);
        // No MSS, an MSS of 0 or below the kernel's table: the cookie encodes 536
        // (tcp_get_syncookie_mss, msstab[0]); the SYN-ACK is the same.
        let cases: [(&[u8], u16, &str); 9] = [
            (&[], 64240, "no options"),
            (&[2, 4, 0, 0], 64240, "MSS 0"),
            (&[2, 4, 0, 64], 64240, "MSS 64"),
            (&many_nops, 64240, "36 NOPs then MSS"),
            (
                &[254, 4, 0xab, 0xcd, 2, 4, 5, 0xb4],
                64240,
                "unknown kind first",
            ),
            // tcp_parse_options stops at a length below 2 or past the end; what came
            // before still counts, and the timestamp never does: MSS only.
            (&[3, 0, 2, 4, 5, 0xb4, 0, 0], 64240, "length 0"),
            (&[2, 4, 5, 0xb4, 8, 1, 0, 0], 64240, "length 1"),
            (
                &[2, 4, 5, 0xb4, 8, 10, 0, 0],
                64240,
                "timestamp past the header",
            ),
            // A timestamp option without its value is skipped by its length.
            (
                &[8, 2, 2, 4, 5, 0xb4, 0, 0],
                64240,
                "timestamp without value",
            ),
        ];
        for (options, window, what) in cases {
            assert_mss_only(bed, options, window, what);
        }
    });
}

#[test]
fn every_option_at_once_still_fits_the_syn() {
    with_bed("2", true, |bed| {
        // MSS, SACK_PERM, TS, WS, an experimental option (RFC 4727's 253, which the kernel
        // skips) and EOL padding: 40 bytes of options.
        let options = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 9, 0, 0, 0, 0, 1, 3, 3, 14, 253, 4, 1, 2, 1, 1, 1,
            1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0,
        ];
        let syn = syn_v4(&options);
        let outcome = bed.run(&syn);
        assert_eq!(outcome.verdict, XDP_TX);
        assert_eq!(outcome.output.len(), 14 + 20 + 40);
        assert!(outcome.output.len() < syn.len());
        let tsval = u32::from_be_bytes(outcome.output[62..66].try_into().unwrap());
        // wscale 14 (the clamp), SACK.
        assert_eq!(tsval & 0x3f, 0x1e);
        let cookie = cookie_of(&outcome.output, 34);
        let [t0, t1, t2, t3] = tsval.to_be_bytes();
        let expected = [
            2, 4, 5, 0xb4, 4, 2, 8, 10, t0, t1, t2, t3, 0, 0, 0, 9, 1, 3, 3, bed.wscale,
        ];
        // Timestamps: the window is cut in segments of MSS less the option (1448).
        assert_eq!(outcome.output, syn_ack_v4(cookie, 65160, &expected));
    });
}

#[test]
fn tagged_syns_are_answered_on_the_same_vlan() {
    with_bed("2", false, |bed| {
        for tags in [vec![c_tag(100)], vec![s_tag(7), c_tag(0xfff)]] {
            let l2 = 14 + 4 * tags.len();
            let outcome = bed.run(&tagged(&syn_v4(&MSS_1460), &tags));
            assert_eq!(outcome.verdict, XDP_TX, "tags {tags:02x?}");
            assert_counted(&outcome, Counter::SynAckSent);
            let cookie = cookie_of(&outcome.output, l2 + 20);
            let expected = tagged(&syn_ack_v4(cookie, 64240, &MSS_1460), &tags);
            assert_eq!(outcome.output, expected);

            let valid = bed.run(&tagged(&third_ack_v4(cookie), &tags));
            assert_eq!(valid.verdict, XDP_PASS);
            assert_counted(&valid, Counter::AckValidated);
            let forged = tagged(&third_ack_v4(cookie ^ 0x00ff_0000), &tags);
            let forged = bed.run(&forged);
            assert_eq!(forged.verdict, XDP_DROP);
            assert_counted(&forged, Counter::AckDroppedForged);

            let tcp = Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &[]);
            let ipv6 = tagged(&packet::ipv6(CLIENT6, SERVER6, 64, &tcp), &tags);
            let outcome = bed.run(&ipv6);
            assert_eq!(outcome.verdict, XDP_TX);
            assert_eq!(outcome.output[12..l2], ipv6[12..l2], "tags kept");
            assert_eq!(outcome.output.len(), ipv6.len() + 4);
        }
    });
}

#[test]
fn tagged_frames_get_the_untagged_verdicts() {
    with_bed("2", false, |bed| {
        let tags = [s_tag(1), c_tag(2)];
        let mut bad_checksum = syn_v4(&MSS_1460);
        bad_checksum[50] ^= 1;
        let ack = Tcp {
            flags: ACK,
            ..Tcp::syn(CLIENT_PORT, 7070, 1, &[])
        };
        let cases = [
            (bad_checksum, Counter::SynPassedBadChecksum),
            (
                packet::ipv4(CLIENT, SERVER, &[], &ack),
                Counter::PassedUnprotected,
            ),
        ];
        for (frame, counter) in cases {
            for depth in 0..=2 {
                assert_passed_untouched(bed, &tagged(&frame, &tags[..depth]), counter);
            }
        }
        // Three tags: passed for the kernel to judge.
        let three = tagged(&syn_v4(&MSS_1460), &[s_tag(1), c_tag(2), c_tag(3)]);
        assert_passed_untouched(bed, &three, Counter::PassedNotTcp);
        // A tag cut short, and a tag followed by ARP.
        let syn = tagged(&syn_v4(&MSS_1460), &[c_tag(5)]);
        assert_passed_untouched(bed, &syn[..16], Counter::Malformed);
        let mut arp = packet::ethernet(packet::SERVER_MAC, packet::CLIENT_MAC, [0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        assert_passed_untouched(bed, &tagged(&arp, &[c_tag(5)]), Counter::PassedNotTcp);
        // Truncated anywhere in a tagged SYN: malformed.
        for len in 14..syn.len() {
            assert_passed_untouched(bed, &syn[..len], Counter::Malformed);
        }
    });
}
