//! Golden packets for the SYN rate limits, through BPF_PROG_TEST_RUN: exact verdicts and
//! counters for SYNs under and over a source's rate, from other sources, and over the
//! caps on SYN-ACKs per destination network and per interface.
//!
//! The buckets refill at a token a second here; a run that took longer than a second
//! (a loaded machine) may see a refilled token, which `answered_at_most` allows for: the
//! bounds come from the configured rates, not from how fast the test runs.

mod common;

use std::time::Instant;

use common::{
    bed::*,
    packet::{self, CLIENT_MAC, SERVER_MAC, Tcp},
};
use handshake::rate_limits::Limits;
use handshake_common::{counters::Counter, rate_limit::Rate};

const SLOW: Rate = Rate {
    per_second: 1,
    burst: 3,
};

fn set_limits(bed: &mut Bed, limits: Limits) {
    bed.reconfigure(|config| *config = limits.apply(config));
}

/// A SYN from `source` to the protected port, addressed to the server's MAC.
fn syn_from(source: [u8; 4]) -> Vec<u8> {
    let tcp = Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460);
    with_macs(packet::ipv4(source, SERVER, &[], &tcp))
}

fn syn_from_v6(source: [u8; 16]) -> Vec<u8> {
    let tcp = Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460);
    with_macs(packet::ipv6(source, SERVER6, 64, &tcp))
}

fn with_macs(mut frame: Vec<u8>) -> Vec<u8> {
    frame[..6].copy_from_slice(&SERVER_MAC);
    frame[6..12].copy_from_slice(&CLIENT_MAC);
    frame
}

/// The client's address in another /64 of 2001:2::/48 (the fourth group).
fn in_subnet(subnet: u16) -> [u8; 16] {
    let mut address = CLIENT6;
    address[6..8].copy_from_slice(&subnet.to_be_bytes());
    address
}

fn assert_answered(bed: &mut Bed, frame: &[u8]) {
    let outcome = bed.run(frame);
    assert_eq!(
        outcome.verdict, XDP_TX,
        "a SYN under every limit is answered"
    );
    assert_counted(&outcome, Counter::SynAckSent);
}

fn assert_dropped(bed: &mut Bed, frame: &[u8], counter: Counter) {
    let outcome = bed.run(frame);
    assert_eq!(outcome.verdict, XDP_DROP, "verdict for a {counter:?} SYN");
    assert_eq!(outcome.output, frame);
    assert_counted(&outcome, counter);
}

/// Sends `frame` `count` times; every one is answered or dropped with `counter`, the
/// answered ones first. Returns how many were answered.
fn answered_of(bed: &mut Bed, frame: &[u8], count: u32, counter: Counter) -> u64 {
    let mut answered = 0;
    for _ in 0..count {
        let outcome = bed.run(frame);
        match outcome.verdict {
            XDP_TX => {
                assert_counted(&outcome, Counter::SynAckSent);
                answered += 1;
            }
            XDP_DROP => assert_counted(&outcome, counter),
            other => panic!("verdict {other} for a SYN under a limit"),
        }
    }
    answered
}

/// `answered` is the burst, plus at most the tokens `rate` refilled since `since`.
fn answered_at_most(answered: u64, rate: Rate, since: Instant) {
    let refilled = (since.elapsed().as_secs_f64() * f64::from(rate.per_second)).ceil() as u64;
    let burst = u64::from(rate.burst);
    assert!(
        (burst..=burst + refilled).contains(&answered),
        "{answered} answered, expected the burst of {burst} (+ up to {refilled} refilled)"
    );
}

#[test]
fn a_source_over_its_rate_is_dropped_and_other_sources_are_answered() {
    with_bed("2", false, |bed| {
        set_limits(
            bed,
            Limits {
                syn_per_source: Some(SLOW),
                ..Limits::default()
            },
        );
        let start = Instant::now();
        // Under the limit: the burst is answered...
        for _ in 0..3 {
            assert_answered(bed, &syn_v4(&MSS_1460));
        }
        // ...over it, dropped (unless a second passed and a token came back).
        let more = answered_of(bed, &syn_v4(&MSS_1460), 5, Counter::SynDroppedRateLimited);
        answered_at_most(3 + more, SLOW, start);
        // Another host of the same /24 has a bucket of its own.
        assert_answered(bed, &syn_from([198, 18, 0, 3]));
        // IPv6 hosts are /64s: another /64 of the same /48 is another host.
        let start = Instant::now();
        let frame = syn_from_v6(CLIENT6);
        let answered = answered_of(bed, &frame, 6, Counter::SynDroppedRateLimited);
        answered_at_most(answered, SLOW, start);
        assert_answered(bed, &syn_from_v6(in_subnet(1)));
        // Off again: nothing is limited, and no map is asked.
        set_limits(bed, Limits::default());
        assert_eq!(bed.handshake.maps.config().unwrap().limits, 0);
        for _ in 0..5 {
            assert_answered(bed, &syn_v4(&MSS_1460));
        }
    });
}

#[test]
fn a_source_network_shares_one_bucket() {
    with_bed("2", false, |bed| {
        set_limits(
            bed,
            Limits {
                syn_per_network: Some(SLOW),
                ..Limits::default()
            },
        );
        let start = Instant::now();
        let mut answered = 0;
        for host in 2..8 {
            let outcome = bed.run(&syn_from([198, 18, 0, host]));
            match outcome.verdict {
                XDP_TX => answered += 1,
                _ => assert_counted(&outcome, Counter::SynDroppedRateLimited),
            }
        }
        answered_at_most(answered, SLOW, start);
        // Another /24 (198.19.0.0/24, in the benchmarking range too) is not limited.
        assert_answered(bed, &syn_from([198, 19, 0, 2]));
        // IPv6 networks are /48s: two /64s of 2001:2::/48 share one.
        let start = Instant::now();
        let mut answered = 0;
        for subnet in 0..6 {
            let outcome = bed.run(&syn_from_v6(in_subnet(subnet)));
            match outcome.verdict {
                XDP_TX => answered += 1,
                _ => assert_counted(&outcome, Counter::SynDroppedRateLimited),
            }
        }
        answered_at_most(answered, SLOW, start);
    });
}

#[test]
fn syn_acks_to_one_destination_network_are_capped() {
    with_bed("2", false, |bed| {
        set_limits(
            bed,
            Limits {
                syn_acks_per_destination: Some(SLOW),
                ..Limits::default()
            },
        );
        // Spoofed sources all over one /24: their SYN-ACKs would all reach that network.
        let start = Instant::now();
        let mut answered = 0;
        for host in 10..30 {
            let outcome = bed.run(&syn_from([198, 18, 1, host]));
            match outcome.verdict {
                XDP_TX => answered += 1,
                XDP_DROP => assert_counted(&outcome, Counter::SynDroppedReflectionCap),
                other => panic!("verdict {other}"),
            }
        }
        answered_at_most(answered, SLOW, start);
        // Another network is answered.
        assert_answered(bed, &syn_from([198, 18, 2, 10]));
        assert_answered(bed, &syn_v4(&MSS_1460));
        // Dry run counts the cap and passes the SYN untouched.
        let mut config = bed.handshake.maps.config().unwrap();
        config.dry_run = 1;
        bed.handshake.set_config(&config).unwrap();
        let start = Instant::now();
        let mut capped = 0;
        for host in 30..40 {
            let frame = syn_from([198, 18, 1, host]);
            let outcome = bed.run(&frame);
            assert_eq!(outcome.verdict, XDP_PASS);
            assert_eq!(outcome.output, frame);
            capped += outcome.counted.get(Counter::SynDroppedReflectionCap);
        }
        let refilled = (start.elapsed().as_secs_f64().ceil() as u64) + 1;
        assert!(capped >= 10 - refilled, "{capped} of 10 capped");
    });
}

#[test]
fn syn_acks_from_the_interface_are_capped() {
    with_bed("2", false, |bed| {
        let cap = Rate {
            per_second: 1,
            burst: 4,
        };
        set_limits(
            bed,
            Limits {
                syn_acks_per_second: Some(cap),
                ..Limits::default()
            },
        );
        let start = Instant::now();
        let mut answered = 0;
        // One SYN from each of 10 networks: none is over a per-destination cap.
        for network in 0..10 {
            let outcome = bed.run(&syn_from([198, 19, network, 2]));
            match outcome.verdict {
                XDP_TX => answered += 1,
                XDP_DROP => assert_counted(&outcome, Counter::SynDroppedReflectionCap),
                other => panic!("verdict {other}"),
            }
        }
        answered_at_most(answered, cap, start);
        // A source over its own rate is counted as that, and takes no token of its
        // network's SYN-ACK bucket (whose burst of 2 the next two SYNs show intact).
        // (Fresh buckets: a bucket in use keeps its tokens when its limit changes.)
        let one = Rate {
            per_second: 1,
            burst: 1,
        };
        set_limits(
            bed,
            Limits {
                syn_per_source: Some(one),
                syn_acks_per_destination: Some(Rate {
                    per_second: 1,
                    burst: 2,
                }),
                ..Limits::default()
            },
        );
        assert_answered(bed, &syn_from([198, 19, 20, 2]));
        assert_dropped(
            bed,
            &syn_from([198, 19, 20, 2]),
            Counter::SynDroppedRateLimited,
        );
        assert_answered(bed, &syn_from([198, 19, 20, 3]));
        assert_dropped(
            bed,
            &syn_from([198, 19, 20, 4]),
            Counter::SynDroppedReflectionCap,
        );
    });
}
