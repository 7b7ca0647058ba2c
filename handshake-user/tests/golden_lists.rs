//! Golden packets for the allow and deny lists and for dry run, through
//! BPF_PROG_TEST_RUN: exact verdicts, output frames and counters.

mod common;

use common::{
    bed::*,
    packet::{self, Tcp},
};
use handshake::{
    prefix::Prefix,
    source_lists::{self, List},
};
use handshake_common::counters::Counter;

fn prefixes(texts: &[&str]) -> Vec<Prefix> {
    texts.iter().map(|text| text.parse().unwrap()).collect()
}

fn add(bed: &mut Bed, list: List, texts: &[&str]) {
    source_lists::add(&mut bed.handshake.maps, list, &prefixes(texts)).unwrap();
}

fn remove(bed: &mut Bed, list: List, texts: &[&str]) {
    source_lists::remove(&mut bed.handshake.maps, list, &prefixes(texts)).unwrap();
}

/// The lists' bits in CONFIG (the bed's own copy of the config does not hold them).
fn list_bits(bed: &Bed) -> u8 {
    bed.handshake.maps.config().unwrap().lists
}

fn set_dry_run(bed: &mut Bed, on: bool) {
    let mut config = bed.handshake.maps.config().unwrap();
    config.dry_run = u8::from(on);
    bed.handshake.set_config(&config).unwrap();
}

fn syn_v6() -> Vec<u8> {
    packet::ipv6(
        CLIENT6,
        SERVER6,
        64,
        &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460),
    )
}

fn assert_dropped(bed: &mut Bed, frame: &[u8], counter: Counter) {
    let outcome = bed.run(frame);
    assert_eq!(outcome.verdict, XDP_DROP, "verdict for a {counter:?} frame");
    assert_eq!(outcome.output, frame);
    assert_counted(&outcome, counter);
}

fn answered(bed: &mut Bed) -> u32 {
    let outcome = bed.run(&syn_v4(&MSS_1460));
    assert_eq!(outcome.verdict, XDP_TX);
    assert_counted(&outcome, Counter::SynAckSent);
    cookie_of(&outcome.output, 34)
}

#[test]
fn allowed_sources_pass_untouched_and_denied_ones_are_dropped() {
    with_bed("2", false, |bed| {
        assert_eq!(list_bits(bed), 0);
        add(bed, List::Allow, &["198.18.0.0/24", "2001:2::/64"]);
        assert_eq!(list_bits(bed), 0b0011);
        // The SYN goes to the kernel as it came; so does the ACK that would complete it.
        assert_passed_untouched(bed, &syn_v4(&MSS_1460), Counter::PassedAllowed);
        assert_passed_untouched(bed, &third_ack_v4(0x1234_5678), Counter::PassedAllowed);
        assert_passed_untouched(bed, &syn_v6(), Counter::PassedAllowed);
        // Only protected ports ask the lists.
        let unprotected = packet::ipv4(
            CLIENT,
            SERVER,
            &[],
            &Tcp::syn(CLIENT_PORT, UNPROTECTED, CLIENT_SEQ, &MSS_1460),
        );
        assert_passed_untouched(bed, &unprotected, Counter::PassedUnprotected);

        remove(bed, List::Allow, &["198.18.0.0/24", "2001:2::/64"]);
        assert_eq!(list_bits(bed), 0);
        add(bed, List::Deny, &["198.18.0.2", "2001:2::2"]);
        assert_eq!(list_bits(bed), 0b1100);
        assert_dropped(bed, &syn_v4(&MSS_1460), Counter::DroppedDenied);
        assert_dropped(bed, &third_ack_v4(0x1234_5678), Counter::DroppedDenied);
        assert_dropped(bed, &syn_v6(), Counter::DroppedDenied);
        assert_passed_untouched(bed, &unprotected, Counter::PassedUnprotected);

        // Removing the entry restores handshake's own verdicts.
        remove(bed, List::Deny, &["198.18.0.2/32", "2001:2::2/128"]);
        assert_eq!(list_bits(bed), 0);
        let cookie = answered(bed);
        let valid = bed.run(&third_ack_v4(cookie));
        assert_eq!(valid.verdict, XDP_PASS);
        assert_counted(&valid, Counter::AckValidated);
    });
}

#[test]
fn the_longest_prefix_across_both_lists_decides() {
    with_bed("2", false, |bed| {
        // A partner's host inside a denied network is allowed...
        add(bed, List::Deny, &["198.18.0.0/16"]);
        add(bed, List::Allow, &["198.18.0.2/32"]);
        assert_passed_untouched(bed, &syn_v4(&MSS_1460), Counter::PassedAllowed);
        // ...and a denied /24 inside an allowed /15 is denied.
        remove(bed, List::Allow, &["198.18.0.2/32"]);
        remove(bed, List::Deny, &["198.18.0.0/16"]);
        add(bed, List::Allow, &["198.18.0.0/15"]);
        add(bed, List::Deny, &["198.18.0.0/24"]);
        assert_dropped(bed, &syn_v4(&MSS_1460), Counter::DroppedDenied);
        // An IPv4 list says nothing of IPv6 sources.
        let outcome = bed.run(&syn_v6());
        assert_eq!(outcome.verdict, XDP_TX);
        assert_counted(&outcome, Counter::SynAckSent);
        // One prefix on both lists is refused, and nothing changes.
        let both = source_lists::add(
            &mut bed.handshake.maps,
            List::Allow,
            &prefixes(&["2001:2::/48", "198.18.0.0/24"]),
        )
        .unwrap_err();
        assert_eq!(
            both.to_string(),
            "198.18.0.0/24 is on the deny list; one prefix cannot be on both: remove it there first (`handshake deny remove`)"
        );
        let allowed = bed
            .handshake
            .maps
            .sources
            .tries(List::Allow)
            .prefixes()
            .unwrap();
        assert_eq!(
            allowed.into_iter().collect::<Vec<_>>(),
            prefixes(&["198.18.0.0/15"])
        );
    });
}

#[test]
fn dry_run_counts_every_verdict_and_passes_every_packet_unchanged() {
    with_bed("2", false, |bed| {
        set_dry_run(bed, true);
        // Answered: counted as such, but the SYN is not rewritten.
        assert_passed_untouched(bed, &syn_v4(&MSS_1460), Counter::SynAckSent);
        assert_passed_untouched(bed, &syn_v6(), Counter::SynAckSent);
        // Forged third ACK (flood_syn_acks is 0 in the bed: every one counts as forged).
        assert_passed_untouched(bed, &third_ack_v4(0x1234_5678), Counter::AckDroppedForged);
        // A martian source.
        let martian = packet::ipv4(
            [127, 0, 0, 1],
            SERVER,
            &[],
            &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460),
        );
        assert_passed_untouched(bed, &martian, Counter::SynDroppedInvalid);
        add(bed, List::Deny, &["198.18.0.0/24"]);
        assert_passed_untouched(bed, &syn_v4(&MSS_1460), Counter::DroppedDenied);
        remove(bed, List::Deny, &["198.18.0.0/24"]);

        // Enforcing again: the same frames get the same counters, and their actions.
        set_dry_run(bed, false);
        answered(bed);
        assert_dropped(bed, &third_ack_v4(0x1234_5678), Counter::AckDroppedForged);
        assert_dropped(bed, &martian, Counter::SynDroppedInvalid);
    });
}
