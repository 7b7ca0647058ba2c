//! The options of a client's SYN, read the way the kernel's `tcp_parse_options` reads them.
//!
//! Reading them the kernel's way matters: the options we encode into the cookie's TSval
//! must be the ones the kernel would have encoded from the same SYN. So, like the kernel:
//! EOL ends the list, a length below 2 or past the end stops parsing (what was read so far
//! counts), and an option of the wrong size is skipped.

use crate::tcp::{MAX_WSCALE, OPT_EOL, OPT_MSS, OPT_NOP, OPT_SACK_PERM, OPT_TIMESTAMP, OPT_WSCALE};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOptions {
    /// The client's MSS, 0 when absent (the cookie helper reads it again itself).
    pub mss: u16,
    /// The client's window scale, clamped to 14 as RFC 7323 2.3 and the kernel do.
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// The client's TSval, to echo as our TSecr.
    pub tsval: Option<u32>,
}

#[inline(always)]
pub fn parse(options: &[u8]) -> SynOptions {
    let mut parsed = SynOptions::default();
    let mut i = 0;
    // Each pass consumes at least one byte, so this runs at most 40 times: a bound the
    // verifier can see through the slice length.
    while i < options.len() {
        let kind = options[i];
        if kind == OPT_EOL {
            break;
        }
        if kind == OPT_NOP {
            i += 1;
            continue;
        }
        if i + 1 >= options.len() {
            break;
        }
        let size = options[i + 1] as usize;
        if size < 2 || i + size > options.len() {
            break;
        }
        match (kind, size) {
            (OPT_MSS, 4) => parsed.mss = u16::from_be_bytes([options[i + 2], options[i + 3]]),
            (OPT_WSCALE, 3) => parsed.wscale = Some(options[i + 2].min(MAX_WSCALE)),
            (OPT_SACK_PERM, 2) => parsed.sack_permitted = true,
            (OPT_TIMESTAMP, 10) => {
                parsed.tsval = Some(u32::from_be_bytes([
                    options[i + 2],
                    options[i + 3],
                    options[i + 4],
                    options[i + 5],
                ]))
            }
            _ => {}
        }
        i += size;
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Linux 6.x puts in its SYN: MSS, SACK_PERM, TS, NOP, WS.
    const LINUX_SYN: [u8; 20] = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x00, 0x01, 0xe2, 0x40, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    #[test]
    fn linux_syn() {
        assert_eq!(
            parse(&LINUX_SYN),
            SynOptions { mss: 1460, wscale: Some(7), sack_permitted: true, tsval: Some(123_456) }
        );
    }

    #[test]
    fn none() {
        assert_eq!(parse(&[]), SynOptions::default());
    }

    #[test]
    fn eol_ends_the_list() {
        assert_eq!(parse(&[0, 0, 2, 4, 5, 0xb4]), SynOptions::default());
    }

    #[test]
    fn wscale_is_clamped_to_14() {
        assert_eq!(parse(&[3, 3, 15]).wscale, Some(14));
    }

    #[test]
    fn wrong_size_is_skipped_and_parsing_goes_on() {
        // An MSS of size 3 is ignored; the SACK_PERM after it still counts.
        assert_eq!(
            parse(&[2, 3, 5, 4, 2]),
            SynOptions { sack_permitted: true, ..SynOptions::default() }
        );
    }

    #[test]
    fn silly_or_overlong_size_stops_parsing() {
        assert_eq!(parse(&[4, 2, 3, 1, 9]), SynOptions { sack_permitted: true, ..Default::default() });
        assert_eq!(parse(&[4, 2, 3, 0]), SynOptions { sack_permitted: true, ..Default::default() });
        assert_eq!(parse(&[4, 2, 8, 10, 0, 0]), SynOptions { sack_permitted: true, ..Default::default() });
        // A kind byte with no size byte after it.
        assert_eq!(parse(&[1, 1, 1, 3]), SynOptions::default());
    }

    #[test]
    fn every_prefix_and_byte_value_is_safe() {
        for len in 0..=LINUX_SYN.len() {
            let _ = parse(&LINUX_SYN[..len]);
        }
        for byte in 0..=255u8 {
            let _ = parse(&[byte; 40]);
        }
    }
}
