//! The TCP header of a cookie SYN-ACK, built on the stack and copied into the packet.
//!
//! Three layouts, so the XDP program copies one of three constant lengths:
//! - MSS only (24 bytes): what the kernel's own cookies carry without timestamps.
//! - MSS, SACK_PERM or two NOPs, TS (36 bytes).
//! - the same and NOP, WS (40 bytes): the layout of Linux's own SYN-ACK.

use crate::{
    config::Config,
    syn_options::SynOptions,
    tcp::{ACK, HEADER_LEN, OPT_MSS, OPT_NOP, OPT_SACK_PERM, OPT_TIMESTAMP, OPT_WSCALE, SYN},
};

pub const MSS_ONLY_LEN: usize = HEADER_LEN + 4;
pub const TIMESTAMPS_LEN: usize = MSS_ONLY_LEN + 12;
pub const TIMESTAMPS_WSCALE_LEN: usize = TIMESTAMPS_LEN + 4;
pub const MAX_LEN: usize = TIMESTAMPS_WSCALE_LEN;

/// The options hidden in the low bits of TSval, as `cookie_init_timestamp` in
/// net/ipv4/syncookies.c lays them out: bits 0..3 the client's window scale (0xf = none),
/// bit 4 SACK permitted, bit 5 ECN (never set here: our SYN-ACK does not negotiate ECN).
const TS_OPT_WSCALE_NONE: u64 = 0xf;
const TS_OPT_SACK: u64 = 1 << 4;
const TS_OPT_BITS: u32 = 6;

/// TSval carrying the client's options, computed exactly as `cookie_init_timestamp`:
/// the current millisecond clock with its low 6 bits replaced by the options, moved one
/// step (64 ms) back if that put it in the future.
///
/// The kernel subtracts a per-connection secret offset from the echoed TSecr before it
/// decodes these bits unless `net.ipv4.tcp_timestamps=2`; hence timestamps mode needs it.
pub fn cookie_tsval(now_ms: u64, client_wscale: Option<u8>, sack: bool) -> u32 {
    let mut options = match client_wscale {
        Some(wscale) => u64::from(wscale),
        None => TS_OPT_WSCALE_NONE,
    };
    if sack {
        options |= TS_OPT_SACK;
    }
    let mut ts = (now_ms >> TS_OPT_BITS << TS_OPT_BITS) | options;
    if ts > now_ms {
        ts = ts.wrapping_sub(1 << TS_OPT_BITS);
    }
    ts as u32
}

/// The window of the SYN-ACK: the receive window the kernel will give the accepted socket.
/// `cookie_v4_check` calls `tcp_select_initial_window` with the MSS decoded from the cookie,
/// which rounds 65535 down to a multiple of it (with default buffers). Advertising more
/// could let the client's first flight overrun the socket's window.
pub fn window(cookie_mss: u16) -> u16 {
    if cookie_mss == 0 {
        return u16::MAX;
    }
    u16::MAX - u16::MAX % cookie_mss
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
    pub sack_permitted: bool,
    /// Our window scale, sent only when the client sent one (RFC 7323 2.2).
    pub wscale: Option<u8>,
}

/// Everything the SYN-ACK's TCP header says, in host byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynAck {
    pub source_port: u16,
    pub dest_port: u16,
    pub cookie: u32,
    pub client_seq: u32,
    pub window: u16,
    pub mss: u16,
    pub timestamps: Option<Timestamps>,
}

impl SynAck {
    pub const fn header_len(&self) -> usize {
        match self.timestamps {
            None => MSS_ONLY_LEN,
            Some(Timestamps { wscale: None, .. }) => TIMESTAMPS_LEN,
            Some(Timestamps {
                wscale: Some(_), ..
            }) => TIMESTAMPS_WSCALE_LEN,
        }
    }

    /// Writes the header into `out[..self.header_len()]` with a zero checksum.
    #[inline(always)]
    pub fn write(&self, out: &mut [u8; MAX_LEN]) {
        out[0..2].copy_from_slice(&self.source_port.to_be_bytes());
        out[2..4].copy_from_slice(&self.dest_port.to_be_bytes());
        out[4..8].copy_from_slice(&self.cookie.to_be_bytes());
        out[8..12].copy_from_slice(&self.client_seq.wrapping_add(1).to_be_bytes());
        out[12] = ((self.header_len() / 4) as u8) << 4;
        out[13] = SYN | ACK;
        out[14..16].copy_from_slice(&self.window.to_be_bytes());
        out[16..20].copy_from_slice(&[0; 4]);
        out[20..22].copy_from_slice(&[OPT_MSS, 4]);
        out[22..24].copy_from_slice(&self.mss.to_be_bytes());
        if let Some(ts) = self.timestamps {
            let sack: [u8; 2] = if ts.sack_permitted {
                [OPT_SACK_PERM, 2]
            } else {
                [OPT_NOP, OPT_NOP]
            };
            out[24..26].copy_from_slice(&sack);
            out[26..28].copy_from_slice(&[OPT_TIMESTAMP, 10]);
            out[28..32].copy_from_slice(&ts.tsval.to_be_bytes());
            out[32..36].copy_from_slice(&ts.tsecr.to_be_bytes());
            if let Some(wscale) = ts.wscale {
                out[36..40].copy_from_slice(&[OPT_NOP, OPT_WSCALE, 3, wscale]);
            }
        }
    }
}

/// The timestamp options of the SYN-ACK, or `None` for MSS only.
///
/// TS goes out only in timestamps mode and when the client offered TS (without it the
/// kernel decodes no options from the ACK). SACK and WS follow the client's offer and the
/// kernel's sysctls. The answer never grows the TCP header past the SYN's own (or 24
/// bytes for an option-less SYN): a SYN-ACK must not amplify.
pub fn timestamps(
    config: &Config,
    syn: &SynOptions,
    syn_header_len: usize,
    now_ms: u64,
) -> Option<Timestamps> {
    let tsecr = syn.tsval?;
    if !config.timestamps() {
        return None;
    }
    let sack_permitted = config.sack() && syn.sack_permitted;
    let client_wscale = if config.window_scaling() {
        syn.wscale
    } else {
        None
    };
    let ts = Timestamps {
        tsval: cookie_tsval(now_ms, client_wscale, sack_permitted),
        tsecr,
        sack_permitted,
        wscale: client_wscale.map(|_| config.wscale),
    };
    let len = if ts.wscale.is_some() {
        TIMESTAMPS_WSCALE_LEN
    } else {
        TIMESTAMPS_LEN
    };
    if len > syn_header_len {
        return None;
    }
    Some(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FLAG_SACK, FLAG_TIMESTAMPS, FLAG_WSCALE};

    #[test]
    fn tsval_hides_options_in_low_bits() {
        // 1_000_000 ms = 0xf4240: low 6 bits 0x00, so (0xf4240 | 0x17) is in the future
        // and steps back by 64.
        assert_eq!(cookie_tsval(1_000_000, Some(7), true), 0xf4240 - 64 + 0x17);
        // 1_000_063: low bits 0x3f; 0x0f is not in the future.
        assert_eq!(cookie_tsval(1_000_063, None, false), 0xf4240 | 0x0f);
        // Exactly equal to now is kept.
        assert_eq!(cookie_tsval(0xf4240 | 0x1f, None, true), 0xf4240 | 0x1f);
    }

    #[test]
    fn tsval_is_the_low_32_bits_of_the_64_bit_clock() {
        let now = (5u64 << 32) + 100;
        assert_eq!(cookie_tsval(now, Some(0), false), 64);
    }

    #[test]
    fn window_is_a_multiple_of_the_cookie_mss() {
        assert_eq!(window(1460), 64240);
        assert_eq!(window(536), 65392);
        assert_eq!(window(0), 65535);
    }

    fn syn_ack(timestamps: Option<Timestamps>) -> SynAck {
        SynAck {
            source_port: 80,
            dest_port: 40000,
            cookie: 0x1122_3344,
            client_seq: 0xffff_ffff,
            window: 64240,
            mss: 1460,
            timestamps,
        }
    }

    #[test]
    fn mss_only_layout() {
        let mut out = [0xaa; MAX_LEN];
        let header = syn_ack(None);
        header.write(&mut out);
        assert_eq!(header.header_len(), 24);
        assert_eq!(
            out[..24],
            [
                0x00, 0x50, 0x9c, 0x40, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0x60, 0x12, 0xfa, 0xf0,
                0, 0, 0, 0, 2, 4, 0x05, 0xb4
            ]
        );
    }

    #[test]
    fn linux_layout_with_timestamps_sack_and_wscale() {
        let mut out = [0; MAX_LEN];
        let header = syn_ack(Some(Timestamps {
            tsval: 0x0102_0304,
            tsecr: 9,
            sack_permitted: true,
            wscale: Some(10),
        }));
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
        let mut out = [0; MAX_LEN];
        let header = syn_ack(Some(Timestamps {
            tsval: 1,
            tsecr: 2,
            sack_permitted: false,
            wscale: None,
        }));
        header.write(&mut out);
        assert_eq!(header.header_len(), 36);
        assert_eq!(out[12], 0x90);
        assert_eq!(
            out[20..36],
            [2, 4, 0x05, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]
        );
    }

    const ALL_FLAGS: Config = Config {
        mss_ipv4: 1460,
        mss_ipv6: 1440,
        wscale: 10,
        flags: FLAG_TIMESTAMPS | FLAG_SACK | FLAG_WSCALE,
        mode: 0,
        _pad: 0,
    };
    const LINUX_SYN: SynOptions = SynOptions {
        mss: 1460,
        wscale: Some(7),
        sack_permitted: true,
        tsval: Some(77),
    };

    #[test]
    fn timestamps_follow_mode_offer_and_sysctls() {
        let ts = timestamps(&ALL_FLAGS, &LINUX_SYN, 40, 1_000_063).unwrap();
        assert_eq!(
            ts,
            Timestamps {
                tsval: 0xf4240 | 0x17,
                tsecr: 77,
                sack_permitted: true,
                wscale: Some(10)
            }
        );

        let off = Config {
            flags: 0,
            ..ALL_FLAGS
        };
        assert_eq!(timestamps(&off, &LINUX_SYN, 40, 1_000_063), None);

        let no_ts = SynOptions {
            tsval: None,
            ..LINUX_SYN
        };
        assert_eq!(timestamps(&ALL_FLAGS, &no_ts, 40, 1_000_063), None);

        let no_sack_sysctl = Config {
            flags: FLAG_TIMESTAMPS | FLAG_WSCALE,
            ..ALL_FLAGS
        };
        let ts = timestamps(&no_sack_sysctl, &LINUX_SYN, 40, 1_000_063).unwrap();
        assert_eq!((ts.tsval & 0x3f, ts.sack_permitted), (0x07, false));

        let no_ws_offer = SynOptions {
            wscale: None,
            ..LINUX_SYN
        };
        let ts = timestamps(&ALL_FLAGS, &no_ws_offer, 40, 1_000_063).unwrap();
        assert_eq!((ts.tsval & 0x3f, ts.wscale), (0x1f, None));
    }

    #[test]
    fn never_longer_than_the_syn() {
        // A SYN of 36 bytes cannot get the 40-byte layout: MSS only instead.
        assert_eq!(timestamps(&ALL_FLAGS, &LINUX_SYN, 36, 1_000_063), None);
        let ts_only = SynOptions {
            mss: 0,
            wscale: None,
            sack_permitted: false,
            tsval: Some(1),
        };
        // TS alone in a 32-byte SYN: our 36 bytes would be longer.
        assert_eq!(timestamps(&ALL_FLAGS, &ts_only, 32, 0), None);
    }
}
