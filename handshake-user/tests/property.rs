//! Random and mutated frames through BPF_PROG_TEST_RUN, with a fixed seed and a time
//! bound. An oracle written here, from the README's rules and not from the program,
//! predicts each frame's counter; every verdict, every output and the counter totals are
//! checked against it, and every SYN-ACK against the invariants that make it safe to send.

mod common;

use std::time::Instant;

use aya::programs::{TestRun as _, TestRunOptions};
use common::{
    bed::*,
    packet::{self, ACK, LINUX_SYN_OPTIONS, Tcp, c_tag, s_tag, tagged},
};
use handshake::local_table::HostRoutes;
use handshake_common::counters::{ALL, COUNTER_COUNT, Counter};

#[path = "property/oracle.rs"]
mod oracle;
use oracle::{Parsed, expect, parse};

const FRAMES_PER_MODE: usize = 400_000;

struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Well-formed frames of every kind the program tells apart, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let payload = [0x42u8; 101];
    let mut tcp = vec![
        Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &[]),
        Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &LINUX_SYN_OPTIONS),
        Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &MSS_1460),
        Tcp::syn(CLIENT_PORT, NO_LISTENER, CLIENT_SEQ, &MSS_1460),
        Tcp::syn(CLIENT_PORT, 7070, CLIENT_SEQ, &MSS_1460),
        Tcp {
            payload: &payload,
            ..Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, &LINUX_SYN_OPTIONS)
        },
    ];
    tcp.push(Tcp {
        flags: ACK,
        ack: 0x1234_5678,
        ..tcp[0].clone()
    });
    let mut frames = Vec::new();
    for segment in &tcp {
        let v4 = packet::ipv4(CLIENT, SERVER, &[], segment);
        let v6 = packet::ipv6(CLIENT6, SERVER6, 64, segment);
        frames.push(packet::ipv4(CLIENT, SERVER, &[1, 1, 1, 0], segment));
        frames.push(tagged(&v4, &[c_tag(10)]));
        frames.push(tagged(&v6, &[s_tag(20), c_tag(30)]));
        frames.push(v4);
        frames.push(v6);
    }
    frames
}

const ADDRESSES_V4: [[u8; 4]; 6] = [
    [0, 0, 0, 0],
    [127, 0, 0, 1],
    [224, 0, 0, 1],
    [255, 255, 255, 255],
    [198, 18, 0, 1],
    [198, 19, 7, 7],
];

/// One to four mutations of a seed, or a frame of random bytes; usually with its
/// checksums made right again, so that the mutation reaches past the checksum check.
fn mutate(random: &mut Random, seeds: &[Vec<u8>]) -> Vec<u8> {
    if random.below(20) == 0 {
        let len = 14 + random.below(120);
        let mut frame: Vec<u8> = (0..len).map(|_| random.byte()).collect();
        frame[12..14].copy_from_slice(if random.below(2) == 0 {
            &[8, 0]
        } else {
            &[0x86, 0xdd]
        });
        return frame;
    }
    let mut frame = seeds[random.below(seeds.len())].clone();
    let l2 = packet::l2_len(&frame).unwrap_or(14);
    for _ in 0..1 + random.below(4) {
        let len = frame.len();
        match random.below(10) {
            0 => frame[random.below(len)] ^= 1 << random.below(8),
            1 => frame[random.below(len)] = random.byte(),
            2 => frame.truncate(14.max(random.below(len + 1))),
            3 => frame.extend((0..random.below(40)).map(|_| random.byte())),
            // Header fields the program reads: IHL/version, total length, fragment
            // bits, TCP data offset and flags, options.
            4 if len > l2 + 8 => frame[l2 + random.below(8)] = random.byte(),
            5 if len > l2 + 34 => frame[l2 + 32 + random.below(2)] = random.byte(),
            6 if len > l2 + 60 => frame[l2 + 40 + random.below(20)] = random.byte(),
            7 if len >= l2 + 20 && frame[l2] >> 4 == 4 => {
                let address = ADDRESSES_V4[random.below(ADDRESSES_V4.len())];
                let at = l2 + 12 + 4 * random.below(2);
                frame[at..at + 4].copy_from_slice(&address);
            }
            8 => frame = tagged(&frame, &[[0x81, 0, random.byte(), random.byte()]]),
            _ if len > 1 => frame[random.below(6)] = random.byte(),
            _ => {}
        }
    }
    if random.below(10) < 7 {
        packet::refresh_checksums(&mut frame);
    }
    frame
}

fn run_frames(timestamps: bool, seed: u64) {
    with_bed("2", timestamps, move |bed| {
        let seeds = seeds();
        let local = HostRoutes::read().unwrap().seen_from(None);
        let mut random = Random(seed);
        let mut expected = [0u64; COUNTER_COUNT as usize];
        let before = bed.handshake.counters().unwrap();
        let started = Instant::now();
        let program = bed.handshake.program().unwrap();
        let mut output = vec![0u8; 4096];
        for index in 0..FRAMES_PER_MODE {
            let input = mutate(&mut random, &seeds);
            let result = program
                .test_run(TestRunOptions {
                    data_in: Some(&input),
                    data_out: Some(&mut output),
                    ..TestRunOptions::new()
                })
                .expect("BPF_PROG_TEST_RUN failed");
            let out = &output[..result.data_size_out as usize];
            let counter = expect(&input, &local);
            expected[counter as usize] += 1;
            check(&input, result.return_value, out, counter, index);
        }
        let counted = bed.handshake.counters().unwrap().since(&before);
        for (counter, name, _) in ALL {
            assert_eq!(counted.get(counter), expected[counter as usize], "{name}");
        }
        assert_eq!(counted.total(), FRAMES_PER_MODE as u64);
        assert!(
            expected[Counter::SynAckSent as usize] > 1000,
            "{expected:?}"
        );
        eprintln!(
            "{FRAMES_PER_MODE} frames in {:?}: {expected:?}",
            started.elapsed()
        );
    });
}

fn check(input: &[u8], verdict: u32, output: &[u8], counter: Counter, index: usize) {
    let want = match counter {
        Counter::SynAckSent => XDP_TX,
        Counter::SynDroppedInvalid | Counter::AckDroppedForged => XDP_DROP,
        _ => XDP_PASS,
    };
    assert_eq!(verdict, want, "frame {index} ({counter:?}): {input:02x?}");
    if verdict != XDP_TX {
        assert_eq!(output, input, "frame {index} changed without XDP_TX");
        return;
    }
    let (Parsed::Tcp(syn), Parsed::Tcp(syn_ack)) = (parse(input), parse(output)) else {
        panic!("frame {index}: the SYN-ACK does not parse: {output:02x?}");
    };
    let grows = if syn.header_len == 20 { 4 } else { 0 };
    assert!(
        output.len() <= input.len() + grows,
        "frame {index} amplifies"
    );
    assert_eq!(output[..6], input[6..12], "frame {index}: destination MAC");
    assert_eq!(output[6..12], input[..6], "frame {index}: source MAC");
    assert_eq!(output[12..syn.l2], input[12..syn.l2], "frame {index}: tags");
    assert_eq!(
        (syn_ack.src, syn_ack.dst),
        (syn.dst, syn.src),
        "frame {index}"
    );
    assert_eq!(
        (syn_ack.source_port, syn_ack.dest_port),
        (syn.dest_port, syn.source_port)
    );
    // ECE only where `tcp_ecn_create_request` agrees to ECN (ECE and CWR asked, a not-ECT
    // IP header or reserved TCP bits set) and timestamps carry it (`cookie_init_timestamp`).
    let tcp = syn.segment_end - syn.payload_len - syn.header_len;
    let ecn_field = if input[syn.l2] >> 4 == 4 {
        input[syn.l2 + 1] & 3
    } else {
        (input[syn.l2 + 1] >> 4) & 3
    };
    let ecn = syn.flags & 0xc0 == 0xc0
        && (ecn_field == 0 || input[tcp + 12] & 0x0f != 0)
        && syn_ack.header_len > 24;
    let flags = if ecn { 0x52 } else { 0x12 };
    assert_eq!(syn_ack.flags, flags, "frame {index}: flags");
    assert_eq!(syn_ack.ack, syn.seq.wrapping_add(1), "frame {index}: ack");
    assert!(
        syn_ack.checksums_ok,
        "frame {index}: checksums {output:02x?}"
    );
    assert_eq!(
        syn_ack.segment_end,
        output.len(),
        "frame {index}: length fields"
    );
    assert!(syn_ack.payload_len == 0, "frame {index}: payload echoed");
}

#[test]
fn mutated_frames_without_timestamps_mode() {
    run_frames(false, 0x5eed_0001_d1ce_f00d);
}

#[test]
fn mutated_frames_in_timestamps_mode() {
    run_frames(true, 0x5eed_0002_cafe_beef);
}
