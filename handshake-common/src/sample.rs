//! Packet samples: what the XDP program writes into the `SAMPLES` ring buffer while
//! `handshake capture` or `handshake top` runs (`Config::sample_counters`), and the
//! verdict classes those commands sample.

use crate::counters::{ALL, Counter};

/// How many bytes of a frame a sample holds: the headers (Ethernet, IPv6, TCP with
/// options take at most 14 + 40 + 60), which are what tell a flood apart.
pub const SAMPLE_BYTES: usize = 128;

/// Bytes of the `SAMPLES` ring buffer: about 6000 samples, a few milliseconds of a flood
/// sampled in full, or some seconds' worth when the reader falls behind.
pub const RING_BYTES: u32 = 1 << 20;

/// One sampled frame, as the program leaves it after the verdict: an answered SYN is
/// sampled as the SYN-ACK it became.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// `bpf_ktime_get_ns`: CLOCK_MONOTONIC.
    pub time_ns: u64,
    /// The `Counter` the frame was counted in.
    pub counter: u32,
    /// The frame's length on the wire (its linear part, as XDP sees it).
    pub len: u32,
    /// How many of `data` hold the frame's first bytes: `min(len, SAMPLE_BYTES)`.
    pub captured: u32,
    pub _pad: u32,
    pub data: [u8; SAMPLE_BYTES],
}

/// A class of verdicts `capture --verdict` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// SYNs answered with a cookie SYN-ACK (`syn_ack_sent`).
    Answered,
    /// ACKs without a valid cookie dropped during a flood (`ack_dropped_forged`).
    Forged,
    /// Every verdict that drops (`*_dropped_*`).
    Dropped,
    /// Every verdict of a packet to a protected port.
    All,
}

const fn bit(counter: Counter) -> u64 {
    1 << counter as u32
}

impl Class {
    /// The `Config::sample_counters` bits of this class. `Dropped` is every counter named
    /// `*dropped*`, so that a new dropping verdict joins it by its name.
    pub fn counters(self) -> u64 {
        match self {
            Class::Answered => bit(Counter::SynAckSent),
            Class::Forged => bit(Counter::AckDroppedForged),
            Class::Dropped => ALL
                .iter()
                .filter(|(_, name, _)| name.contains("dropped"))
                .fold(0, |bits, (counter, _, _)| bits | bit(*counter)),
            Class::All => u64::MAX,
        }
    }
}

/// What `handshake top` samples: SYNs answered, SYNs dropped, forged ACKs.
pub const TOP_COUNTERS: u64 = bit(Counter::SynAckSent)
    | bit(Counter::SynDroppedInvalid)
    | bit(Counter::DroppedDenied)
    | bit(Counter::AckDroppedForged);

#[cfg(feature = "user")]
unsafe impl aya::Pod for Sample {}
