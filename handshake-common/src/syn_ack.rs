//! The TCP header of a cookie SYN-ACK, which the XDP program writes straight into the
//! packet.
//!
//! Three layouts, so the XDP program writes one of three constant lengths:
//! - MSS only (24 bytes): what the kernel's own cookies carry without timestamps.
//! - MSS, SACK_PERM or two NOPs, TS (36 bytes).
//! - the same and NOP, WS (40 bytes): the layout of Linux's own SYN-ACK.

use crate::{
    listener::Namespace,
    syn_options::SynOptions,
    tcp::{ACK, ECE, HEADER_LEN, OPT_MSS, OPT_NOP, OPT_SACK_PERM, OPT_TIMESTAMP, OPT_WSCALE, SYN},
};

pub const MSS_ONLY_LEN: usize = HEADER_LEN + 4;
pub const TIMESTAMPS_LEN: usize = MSS_ONLY_LEN + 12;
pub const TIMESTAMPS_WSCALE_LEN: usize = TIMESTAMPS_LEN + 4;
pub const MAX_LEN: usize = TIMESTAMPS_WSCALE_LEN;

/// The options hidden in the low bits of TSval, as `cookie_init_timestamp` in
/// net/ipv4/syncookies.c lays them out: bits 0..3 the client's window scale (0xf = none),
/// bit 4 SACK permitted, bit 5 ECN.
const TS_OPT_WSCALE_NONE: u64 = 0xf;
const TS_OPT_SACK: u64 = 1 << 4;
const TS_OPT_ECN: u64 = 1 << 5;
const TS_OPT_BITS: u32 = 6;

/// TSval carrying the client's options, computed exactly as `cookie_init_timestamp`:
/// the current millisecond clock with its low 6 bits replaced by the options, moved one
/// step (64 ms) back if that put it in the future.
///
/// The kernel subtracts a per-connection secret offset from the echoed TSecr before it
/// decodes these bits unless `net.ipv4.tcp_timestamps=2`; hence timestamps mode needs it.
pub fn cookie_tsval(now_ms: u64, client_wscale: Option<u8>, sack: bool, ecn: bool) -> u32 {
    let mut options = match client_wscale {
        Some(wscale) => u64::from(wscale),
        None => TS_OPT_WSCALE_NONE,
    };
    if sack {
        options |= TS_OPT_SACK;
    }
    if ecn {
        options |= TS_OPT_ECN;
    }
    let mut ts = (now_ms >> TS_OPT_BITS << TS_OPT_BITS) | options;
    if ts > now_ms {
        ts = ts.wrapping_sub(1 << TS_OPT_BITS);
    }
    ts as u32
}

/// Which options the SYN-ACK carries; each layout has its own constant length, so the XDP
/// program writes and sums one of three constant-size ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Layout {
    MssOnly,
    /// MSS, SACK_PERM (or two NOPs), TS.
    Timestamps,
    /// MSS, SACK_PERM (or two NOPs), TS, NOP, WS.
    TimestampsWscale,
}

impl Layout {
    pub const fn header_len(self) -> usize {
        match self {
            Self::MssOnly => MSS_ONLY_LEN,
            Self::Timestamps => TIMESTAMPS_LEN,
            Self::TimestampsWscale => TIMESTAMPS_WSCALE_LEN,
        }
    }
}

/// Everything the SYN-ACK's TCP header says, in host byte order. Plain fields (see
/// `SynOptions`): those a layout does not carry are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynAck {
    pub source_port: u16,
    pub dest_port: u16,
    pub cookie: u32,
    pub client_seq: u32,
    pub window: u16,
    pub mss: u16,
    pub layout: Layout,
    pub sack_ok: bool,
    pub tsval: u32,
    pub tsecr: u32,
    /// Our window scale, sent only when the client sent one (RFC 7323 2.2).
    pub wscale: u8,
    /// ECN agreed (RFC 3168 6.1.1): the ECE flag, and bit 5 of TSval for the ACK.
    pub ece: bool,
}

impl SynAck {
    pub const fn header_len(&self) -> usize {
        self.layout.header_len()
    }

    /// Writes the header into `out` with a zero checksum; `N` is the layout's length, so
    /// that the XDP program can write straight into the packet at a constant size.
    #[inline(always)]
    pub fn write<const N: usize>(&self, out: &mut [u8; N]) {
        out[0..2].copy_from_slice(&self.source_port.to_be_bytes());
        out[2..4].copy_from_slice(&self.dest_port.to_be_bytes());
        out[4..8].copy_from_slice(&self.cookie.to_be_bytes());
        out[8..12].copy_from_slice(&self.client_seq.wrapping_add(1).to_be_bytes());
        out[12] = ((N / 4) as u8) << 4;
        out[13] = if self.ece { SYN | ACK | ECE } else { SYN | ACK };
        out[14..16].copy_from_slice(&self.window.to_be_bytes());
        out[16..20].copy_from_slice(&[0; 4]);
        out[20..22].copy_from_slice(&[OPT_MSS, 4]);
        out[22..24].copy_from_slice(&self.mss.to_be_bytes());
        if N >= TIMESTAMPS_LEN {
            let sack: [u8; 2] = if self.sack_ok {
                [OPT_SACK_PERM, 2]
            } else {
                [OPT_NOP, OPT_NOP]
            };
            out[24..26].copy_from_slice(&sack);
            out[26..28].copy_from_slice(&[OPT_TIMESTAMP, 10]);
            out[28..32].copy_from_slice(&self.tsval.to_be_bytes());
            out[32..36].copy_from_slice(&self.tsecr.to_be_bytes());
        }
        if N >= TIMESTAMPS_WSCALE_LEN {
            out[36..40].copy_from_slice(&[OPT_NOP, OPT_WSCALE, 3, self.wscale]);
        }
    }
}

/// The layout of the SYN-ACK, before anything else of it is known (so the XDP program
/// reads the clock only when TS goes out).
///
/// TS goes out only with `tcp_timestamps=2` and when the client offered TS (without it
/// the kernel decodes no options from the ACK: `cookie_timestamp_decode`; with 1 the SYN
/// is the kernel's, with 0 the kernel ignores the offer). WS follows the client's offer
/// and the sysctl. The answer never grows the TCP header past the SYN's own (or 24 bytes
/// for an option-less SYN): a SYN-ACK must not amplify.
#[inline(always)]
pub fn layout(net: &Namespace, syn: &SynOptions, syn_header_len: usize) -> Layout {
    if net.timestamps != 2 || !syn.saw_tstamp {
        return Layout::MssOnly;
    }
    let layout = if net.window_scaling && syn.wscale_ok {
        Layout::TimestampsWscale
    } else {
        Layout::Timestamps
    };
    if layout.header_len() > syn_header_len {
        return Layout::MssOnly;
    }
    layout
}

/// Fills the option fields of `header` for `layout`: SACK when the client offered it
/// and the sysctl allows it, ECN when the client asked for it (`ecn_requested`) and the
/// sysctl allows it, TSval encoding them, TSecr echoing the client's TSval. Without
/// timestamps a cookie can carry neither (`tcp_conn_request` clears `ecn_ok`). `wscale`
/// is ours, as `listener::initial_window` chose it.
#[inline(always)]
pub fn set_timestamps(
    header: &mut SynAck,
    net: &Namespace,
    syn: &SynOptions,
    ecn_requested: bool,
    now_ms: u64,
    wscale: u8,
) {
    if header.layout == Layout::MssOnly {
        return;
    }
    let sack_ok = net.sack && syn.sack_ok;
    let wscale_ok = header.layout == Layout::TimestampsWscale;
    let ecn_ok = net.ecn != 0 && ecn_requested;
    header.sack_ok = sack_ok;
    header.ece = ecn_ok;
    header.tsval = cookie_tsval(now_ms, wscale_ok.then_some(syn.snd_wscale), sack_ok, ecn_ok);
    header.tsecr = syn.rcv_tsval;
    header.wscale = if wscale_ok { wscale } else { 0 };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsval_hides_options_in_low_bits() {
        // 1_000_000 ms = 0xf4240: low 6 bits 0x00, so (0xf4240 | 0x17) is in the future
        // and steps back by 64.
        assert_eq!(
            cookie_tsval(1_000_000, Some(7), true, false),
            0xf4240 - 64 + 0x17
        );
        // 1_000_063: low bits 0x3f; 0x0f is not in the future.
        assert_eq!(cookie_tsval(1_000_063, None, false, false), 0xf4240 | 0x0f);
        // Exactly equal to now is kept.
        assert_eq!(
            cookie_tsval(0xf4240 | 0x1f, None, true, false),
            0xf4240 | 0x1f
        );
        // ECN is bit 5.
        assert_eq!(cookie_tsval(1_000_063, Some(1), true, true), 0xf4240 | 0x31);
    }

    #[test]
    fn tsval_is_the_low_32_bits_of_the_64_bit_clock() {
        let now = (5u64 << 32) + 100;
        assert_eq!(cookie_tsval(now, Some(0), false, false), 64);
    }

    fn syn_ack(layout: Layout) -> SynAck {
        SynAck {
            source_port: 80,
            dest_port: 40000,
            cookie: 0x1122_3344,
            client_seq: 0xffff_ffff,
            window: 64240,
            mss: 1460,
            layout,
            sack_ok: false,
            tsval: 0,
            tsecr: 0,
            wscale: 0,
            ece: false,
        }
    }

    #[test]
    fn mss_only_layout() {
        let mut out = [0xaa; MSS_ONLY_LEN];
        let header = syn_ack(Layout::MssOnly);
        header.write(&mut out);
        assert_eq!(header.header_len(), 24);
        assert_eq!(
            out,
            [
                0x00, 0x50, 0x9c, 0x40, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0x60, 0x12, 0xfa, 0xf0,
                0, 0, 0, 0, 2, 4, 0x05, 0xb4
            ]
        );
    }

    #[test]
    fn linux_layout_with_timestamps_sack_and_wscale() {
        let mut out = [0; TIMESTAMPS_WSCALE_LEN];
        let header = SynAck {
            sack_ok: true,
            tsval: 0x0102_0304,
            tsecr: 9,
            wscale: 10,
            ..syn_ack(Layout::TimestampsWscale)
        };
        header.write(&mut out);
        assert_eq!(header.header_len(), 40);
        assert_eq!(out[12], 0xa0);
        assert_eq!(
            out[20..40],
            [
                2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 9, 1, 3, 3, 10
            ]
        );
    }

    #[test]
    fn timestamps_without_sack_or_wscale() {
        let mut out = [0; TIMESTAMPS_LEN];
        let header = SynAck {
            tsval: 1,
            tsecr: 2,
            ..syn_ack(Layout::Timestamps)
        };
        header.write(&mut out);
        assert_eq!(header.header_len(), 36);
        assert_eq!(out[12], 0x90);
        assert_eq!(
            out[20..36],
            [2, 4, 0x05, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]
        );
    }

    const ALL_FLAGS: Namespace = Namespace {
        timestamps: 2,
        sack: true,
        window_scaling: true,
        ecn: 0,
        default_ttl: 64,
        tcp_rmem_max: 6_291_456,
        reflect_tos: false,
        adv_win_scale: 1,
        workaround_signed_windows: false,
    };
    const LINUX_SYN: SynOptions = SynOptions {
        mss: 1460,
        wscale_ok: true,
        snd_wscale: 7,
        sack_ok: true,
        saw_tstamp: true,
        rcv_tsval: 77,
        kernel_only: false,
    };

    /// The options part of the answer for `syn`, as the XDP program computes it.
    fn answer(net: &Namespace, syn: &SynOptions, syn_len: usize, now_ms: u64) -> SynAck {
        let mut header = syn_ack(layout(net, syn, syn_len));
        set_timestamps(&mut header, net, syn, false, now_ms, 10);
        header
    }

    #[test]
    fn timestamps_follow_mode_offer_and_sysctls() {
        let ts = answer(&ALL_FLAGS, &LINUX_SYN, 40, 1_000_063);
        assert_eq!(
            (ts.layout, ts.tsval, ts.tsecr, ts.sack_ok, ts.wscale),
            (Layout::TimestampsWscale, 0xf4240 | 0x17, 77, true, 10)
        );

        let off = Namespace {
            timestamps: 0,
            ..ALL_FLAGS
        };
        assert_eq!(
            answer(&off, &LINUX_SYN, 40, 1_000_063),
            syn_ack(Layout::MssOnly)
        );

        let no_ts = SynOptions {
            saw_tstamp: false,
            ..LINUX_SYN
        };
        assert_eq!(
            answer(&ALL_FLAGS, &no_ts, 40, 1_000_063),
            syn_ack(Layout::MssOnly)
        );

        let no_sack_sysctl = Namespace {
            sack: false,
            ..ALL_FLAGS
        };
        let ts = answer(&no_sack_sysctl, &LINUX_SYN, 40, 1_000_063);
        assert_eq!((ts.tsval & 0x3f, ts.sack_ok), (0x07, false));

        let no_ws_offer = SynOptions {
            wscale_ok: false,
            ..LINUX_SYN
        };
        let ts = answer(&ALL_FLAGS, &no_ws_offer, 40, 1_000_063);
        assert_eq!(
            (ts.tsval & 0x3f, ts.layout, ts.wscale),
            (0x1f, Layout::Timestamps, 0)
        );
    }

    #[test]
    fn never_longer_than_the_syn() {
        // A SYN of 36 bytes cannot get the 40-byte layout: MSS only instead.
        assert_eq!(layout(&ALL_FLAGS, &LINUX_SYN, 36), Layout::MssOnly);
        let ts_only = SynOptions {
            saw_tstamp: true,
            rcv_tsval: 1,
            ..SynOptions::default()
        };
        // TS alone in a 32-byte SYN: our 36 bytes would be longer.
        assert_eq!(layout(&ALL_FLAGS, &ts_only, 32), Layout::MssOnly);
    }
}
