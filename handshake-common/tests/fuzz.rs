//! Fuzzing on the host, runnable in CI: the pure functions the XDP program runs, fed
//! hundreds of thousands of random and mutated inputs from a fixed seed, each checked
//! against a reference written here or against an invariant.

use handshake_common::{
    checksum,
    listener::{self, Listener, Namespace},
    martian,
    syn_ack::{self, Layout, MAX_LEN, MSS_ONLY_LEN, SynAck, TIMESTAMPS_LEN},
    syn_options::{self, SynOptions},
};

const ROUNDS: usize = 200_000;

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

    /// Bytes biased towards option kinds and sizes, so that option lists take shape.
    fn option_bytes(&mut self, len: usize) -> Vec<u8> {
        const LIKELY: [u8; 12] = [0, 1, 2, 3, 4, 8, 10, 2, 4, 40, 255, 1];
        (0..len)
            .map(|_| match self.below(3) {
                0 => self.next() as u8,
                _ => LIKELY[self.below(LIKELY.len())],
            })
            .collect()
    }
}

/// The kernel's `tcp_parse_options` for the four options a cookie SYN-ACK needs, written
/// as plainly as possible.
fn reference_parse(options: &[u8]) -> SynOptions {
    let mut parsed = SynOptions::default();
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&size) = options.get(i + 1) else {
                    break;
                };
                let size = usize::from(size);
                if size < 2 || i + size > options.len() {
                    break;
                }
                let value = &options[i + 2..i + size];
                match (kind, size) {
                    (2, 4) => parsed.mss = u16::from_be_bytes([value[0], value[1]]),
                    (3, 3) => (parsed.wscale_ok, parsed.snd_wscale) = (true, value[0].min(14)),
                    (4, 2) => parsed.sack_ok = true,
                    (19 | 29 | 30, _) => parsed.kernel_only = true,
                    (8, 10) => {
                        parsed.saw_tstamp = true;
                        parsed.rcv_tsval = u32::from_be_bytes(value[..4].try_into().unwrap());
                    }
                    _ => {}
                }
                i += size;
            }
        }
    }
    parsed
}

#[test]
fn option_parsing_agrees_with_the_reference() {
    let mut random = Random(0x0b71_0415);
    for _ in 0..ROUNDS {
        let len = random.below(41);
        let options = random.option_bytes(len);
        let parsed = syn_options::parse(&options);
        assert_eq!(parsed, reference_parse(&options), "{options:?}");
        // The constant-offset fast path agrees wherever it answers.
        if let Ok(linux) = options.as_slice().try_into()
            && let Some(fast) = syn_options::parse_linux(linux)
        {
            assert_eq!(fast, parsed, "{options:?}");
        }
    }
}

/// RFC 1071 by the book: 16-bit big-endian words, summed wide, folded, complemented.
fn reference_checksum(data: &[u8]) -> u16 {
    let mut sum: u64 = data
        .chunks(2)
        .map(|pair| (u64::from(pair[0]) << 8) | u64::from(*pair.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[test]
fn checksums_agree_with_the_reference() {
    let mut random = Random(0xc5c5_1071);
    for _ in 0..ROUNDS / 4 {
        let len = random.below(1600);
        let mut data: Vec<u8> = (0..len).map(|_| random.next() as u8).collect();
        if random.below(4) == 0 {
            data.iter_mut().for_each(|byte| *byte |= 0xf0); // many carries
        }
        let reference = reference_checksum(&data);
        assert_eq!(checksum::finish(checksum::sum_words(0, &data)), reference);
        // The wide sum, taken the way the XDP program's chunked loads take it, is the
        // same sum in native byte order.
        let wide = checksum::fold_wide(checksum::sum_range(0, &data));
        assert_eq!(wide, u16::from_ne_bytes((!reference).to_be_bytes()));
        // Data that carries its own checksum verifies, and stops verifying when changed.
        if data.len() % 2 == 1 {
            data.push(0);
        }
        data.extend_from_slice(&[0, 0]);
        let at = data.len() - 2;
        let sum = reference_checksum(&data);
        data[at..].copy_from_slice(&sum.to_be_bytes());
        assert!(checksum::wide_verifies(checksum::sum_range(0, &data)));
        let flip = random.below(data.len());
        data[flip] ^= 1 << random.below(8);
        assert!(!checksum::wide_verifies(checksum::sum_range(0, &data)));
    }
}

#[test]
fn syn_ack_tcp_checksum_agrees_with_the_reference() {
    let mut random = Random(0x5a5a_0001);
    for _ in 0..ROUNDS / 4 {
        let mut segment = [0u8; MAX_LEN];
        let len = [24, 36, 40][random.below(3)];
        for byte in &mut segment[..len] {
            *byte = random.next() as u8;
        }
        segment[16..18].copy_from_slice(&[0, 0]);
        let (src, dst) = (random.next().to_be_bytes(), random.next().to_be_bytes());
        let mut pseudo = src.to_vec();
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, 6, 0, len as u8]);
        pseudo.extend_from_slice(&segment[..len]);
        assert_eq!(
            checksum::tcp_field(
                checksum::add_wide(checksum::add_wide(0, &src), &dst),
                len,
                &segment
            ),
            reference_checksum(&pseudo).to_be_bytes()
        );
    }
}

#[test]
fn cookie_tsval_hides_the_options_and_never_runs_ahead() {
    let mut random = Random(0x0075_77a1);
    for _ in 0..ROUNDS {
        let now = random.next() >> random.below(64);
        let wscale = (random.below(2) == 0).then(|| random.below(15) as u8);
        let sack = random.below(2) == 0;
        let ecn = random.below(2) == 0;
        let tsval = syn_ack::cookie_tsval(now, wscale, sack, ecn);
        let bits = u64::from(wscale.unwrap_or(0xf))
            | if sack { 0x10 } else { 0 }
            | if ecn { 0x20 } else { 0 };
        assert_eq!(u64::from(tsval) & 0x3f, bits, "options in the low bits");
        // At most 64 ms behind the clock and never ahead (modulo 2^32: TSval wraps),
        // except in the first 64 ms of uptime, where there is no earlier step.
        let behind = (now as u32).wrapping_sub(tsval);
        assert!(behind < 64 || now < 64, "now {now} tsval {tsval}");
    }
}

#[test]
fn syn_acks_never_outgrow_the_syn() {
    let mut random = Random(0x9a9a);
    for _ in 0..ROUNDS / 4 {
        let net = Namespace {
            timestamps: random.below(3) as u8,
            sack: random.below(2) == 0,
            window_scaling: random.below(2) == 0,
            tcp_rmem_max: random.next() as u32,
            adv_win_scale: 1,
            ..Namespace::default()
        };
        let listener = Listener {
            rcvbuf: random.next() as u32,
            rcvbuf_locked: random.below(2) == 0,
            window_clamp: random.next() as u32 >> random.below(32),
            ..Listener::default()
        };
        let header_len = 20 + 4 * random.below(11);
        let options = syn_options::parse(&random.option_bytes(header_len - 20));
        let mut header = SynAck {
            source_port: 8080,
            dest_port: 1,
            cookie: random.next() as u32,
            client_seq: random.next() as u32,
            window: 0,
            mss: 1460,
            layout: syn_ack::layout(&net, &options, header_len),
            sack_ok: false,
            tsval: 0,
            tsecr: 0,
            wscale: 0,
            ece: false,
        };
        let wscale_ok = header.layout == Layout::TimestampsWscale;
        let timestamps = header.layout != Layout::MssOnly;
        let (window, wscale) = listener::initial_window(
            &listener,
            &net,
            random.next() as u32,
            1460,
            timestamps,
            wscale_ok,
        );
        assert!(wscale <= 14);
        header.window = window;
        syn_ack::set_timestamps(
            &mut header,
            &net,
            &options,
            random.below(2) == 0,
            random.next(),
            wscale,
        );
        // An option-less SYN may grow by the 4 bytes of MSS; nothing else grows.
        assert!(header.header_len() <= header_len.max(24));
        let mut out = [0u8; MAX_LEN];
        match header.layout {
            Layout::MssOnly => header.write(out.first_chunk_mut::<MSS_ONLY_LEN>().unwrap()),
            Layout::Timestamps => header.write(out.first_chunk_mut::<TIMESTAMPS_LEN>().unwrap()),
            Layout::TimestampsWscale => header.write(&mut out),
        }
        assert_eq!(usize::from(out[12] >> 4) * 4, header.header_len());
        assert_eq!(out[13], 0x12);
        let ack = u32::from_be_bytes(out[8..12].try_into().unwrap());
        assert_eq!(ack, header.client_seq.wrapping_add(1));
    }
}

#[test]
fn martian_rules_are_symmetric_where_they_should_be() {
    let mut random = Random(0x3a27);
    for _ in 0..ROUNDS {
        let (a, b) = (random.next().to_be_bytes(), random.next().to_be_bytes());
        let (a4, b4): ([u8; 4], [u8; 4]) = (a[..4].try_into().unwrap(), b[..4].try_into().unwrap());
        // Every IPv4 rule names an address as unusable on either side.
        assert_eq!(martian::ipv4(a4, b4), martian::ipv4(b4, a4));
        assert!(martian::ipv4(a4, a4));
        let a6: [u8; 16] = [a, b].concat().try_into().unwrap();
        assert!(martian::ipv6(a6, a6));
    }
}
