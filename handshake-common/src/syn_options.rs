//! The options of a client's SYN, read the way the kernel's `tcp_parse_options` reads them.
//!
//! Reading them the kernel's way matters: the options we encode into the cookie's TSval
//! must be the ones the kernel would have encoded from the same SYN. So, like the kernel:
//! EOL ends the list, a length below 2 or past the end stops parsing (what was read so far
//! counts), and an option of the wrong size is skipped.

use crate::tcp::{
    MAX_OPTIONS_LEN, MAX_WSCALE, OPT_AO, OPT_EOL, OPT_MD5SIG, OPT_MPTCP, OPT_MSS, OPT_NOP,
    OPT_SACK_PERM, OPT_TIMESTAMP, OPT_WSCALE,
};

/// Named after the kernel's `struct tcp_options_received`. Plain fields, no `Option`s:
/// the XDP program keeps this on its stack, and the payload of a `None` is memory LLVM
/// never writes, which the verifier of kernels before 6.8 refuses to see read. Aligned to
/// eight bytes so that zeroing it is two stores, not a call to `memset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct SynOptions {
    /// The client's MSS, 0 when absent (the cookie helper reads it again itself).
    pub mss: u16,
    pub wscale_ok: bool,
    /// The client's window scale, clamped to 14 as RFC 7323 2.3 and the kernel do.
    pub snd_wscale: u8,
    pub sack_ok: bool,
    pub saw_tstamp: bool,
    /// The client's TSval, to echo as our TSecr.
    pub rcv_tsval: u32,
    /// TCP-MD5, TCP-AO or MPTCP: only the kernel can answer this SYN.
    pub kernel_only: bool,
}

/// Parses the options of a slice (the host's view, and the tests').
pub fn parse(options: &[u8]) -> SynOptions {
    parse_with(options.len(), |offset, out| {
        match options.get(offset..offset + out.len()) {
            Some(bytes) => {
                out.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    })
}

/// The option bytes of a Linux SYN (MSS, SACK_PERM, TS, NOP, WS: a data offset of 10),
/// the layout of most clients: the XDP program reads these 20 bytes at a constant offset
/// instead of walking them option by option. `None` for any other bytes, which then go
/// through [`parse_with`].
#[inline(always)]
pub fn parse_linux(options: &[u8; LINUX_LEN]) -> Option<SynOptions> {
    let [
        mss_kind,
        mss_len,
        mss_high,
        mss_low,
        sack_kind,
        sack_len,
        ts_kind,
        ts_len,
        ..,
    ] = *options;
    let [.., nop, ws_kind, ws_len, wscale] = *options;
    let layout = [
        mss_kind, mss_len, sack_kind, sack_len, ts_kind, ts_len, nop, ws_kind, ws_len,
    ];
    if layout
        != [
            OPT_MSS,
            4,
            OPT_SACK_PERM,
            2,
            OPT_TIMESTAMP,
            10,
            OPT_NOP,
            OPT_WSCALE,
            3,
        ]
    {
        return None;
    }
    let [_, _, _, _, _, _, _, _, t0, t1, t2, t3, ..] = *options;
    Some(SynOptions {
        mss: u16::from_be_bytes([mss_high, mss_low]),
        wscale_ok: true,
        snd_wscale: wscale.min(MAX_WSCALE),
        sack_ok: true,
        saw_tstamp: true,
        rcv_tsval: u32::from_be_bytes([t0, t1, t2, t3]),
        kernel_only: false,
    })
}

/// The length of the options [`parse_linux`] reads.
pub const LINUX_LEN: usize = 20;

/// The option bytes of a Windows SYN: MSS, NOP, WS, NOP, NOP, SACK_PERM (no timestamps).
pub const WINDOWS_LEN: usize = 12;

/// Windows' layout read at a constant offset, as [`parse_linux`] reads Linux's.
#[inline(always)]
pub fn parse_windows(options: &[u8; WINDOWS_LEN]) -> Option<SynOptions> {
    let [
        kind,
        len,
        high,
        low,
        nop,
        ws_kind,
        ws_len,
        wscale,
        nop2,
        nop3,
        sack_kind,
        sack_len,
    ] = *options;
    let layout = [
        kind, len, nop, ws_kind, ws_len, nop2, nop3, sack_kind, sack_len,
    ];
    let windows = [
        OPT_MSS,
        4,
        OPT_NOP,
        OPT_WSCALE,
        3,
        OPT_NOP,
        OPT_NOP,
        OPT_SACK_PERM,
        2,
    ];
    (layout == windows).then_some(SynOptions {
        mss: u16::from_be_bytes([high, low]),
        wscale_ok: true,
        snd_wscale: wscale.min(MAX_WSCALE),
        sack_ok: true,
        saw_tstamp: false,
        rcv_tsval: 0,
        kernel_only: false,
    })
}

/// Where a walk over the options stands: the XDP program keeps it on its stack between
/// `bpf_loop` callbacks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Walk {
    pub offset: usize,
    pub parsed: SynOptions,
}

/// Parses `len` bytes of options that `load(offset, out)` copies out, a few at a time.
pub fn parse_with(len: usize, load: impl Fn(usize, &mut [u8]) -> bool) -> SynOptions {
    let mut walk = Walk::default();
    // Every step consumes at least one byte.
    for _ in 0..MAX_OPTIONS_LEN {
        if !step(&mut walk, len, &load) {
            break;
        }
    }
    walk.parsed
}

/// Reads one option (or one NOP) and returns whether the list goes on.
///
/// The XDP program runs this from a `bpf_loop` callback, loading from the packet with
/// `bpf_xdp_load_bytes`: the verifier then checks one step instead of every path through
/// forty, which took it past its million-instruction limit.
#[inline(always)]
pub fn step(walk: &mut Walk, len: usize, load: impl Fn(usize, &mut [u8]) -> bool) -> bool {
    let offset = walk.offset;
    // A lone last byte can only be EOL, NOP or an option cut short: all end the list.
    let mut head = [0u8; 2];
    if offset + 2 > len || !load(offset, &mut head) {
        return false;
    }
    let [kind, size] = head;
    if kind == OPT_EOL {
        return false;
    }
    if kind == OPT_NOP {
        walk.offset += 1;
        return true;
    }
    let size = size as usize;
    if size < 2 || offset + size > len {
        return false;
    }
    let parsed = &mut walk.parsed;
    match (kind, size) {
        (OPT_MSS, 4) => {
            let mut mss = [0u8; 2];
            if load(offset + 2, &mut mss) {
                parsed.mss = u16::from_be_bytes(mss);
            }
        }
        (OPT_WSCALE, 3) => {
            let mut wscale = [0u8; 1];
            if load(offset + 2, &mut wscale) {
                parsed.wscale_ok = true;
                parsed.snd_wscale = wscale[0].min(MAX_WSCALE);
            }
        }
        (OPT_SACK_PERM, 2) => parsed.sack_ok = true,
        (OPT_MD5SIG | OPT_AO | OPT_MPTCP, _) => parsed.kernel_only = true,
        (OPT_TIMESTAMP, 10) => {
            let mut tsval = [0u8; 4];
            if load(offset + 2, &mut tsval) {
                parsed.saw_tstamp = true;
                parsed.rcv_tsval = u32::from_be_bytes(tsval);
            }
        }
        _ => {}
    }
    walk.offset += size;
    true
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
            SynOptions {
                mss: 1460,
                wscale_ok: true,
                snd_wscale: 7,
                sack_ok: true,
                saw_tstamp: true,
                rcv_tsval: 123_456,
                kernel_only: false,
            }
        );
    }

    #[test]
    fn linux_layout_reads_as_the_walk_does() {
        assert_eq!(parse_linux(&LINUX_SYN), Some(parse(&LINUX_SYN)));
        let mut big_wscale = LINUX_SYN;
        big_wscale[19] = 200;
        assert_eq!(parse_linux(&big_wscale), Some(parse(&big_wscale)));
        // Any other kind or size at any position is left to the walk.
        for at in [0, 1, 4, 5, 6, 7, 16, 17, 18] {
            let mut other = LINUX_SYN;
            other[at] ^= 0x40;
            assert_eq!(parse_linux(&other), None, "byte {at}");
        }
    }

    #[test]
    fn windows_layout_reads_as_the_walk_does() {
        let windows = [2, 4, 5, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2];
        assert_eq!(parse_windows(&windows), Some(parse(&windows)));
        // Any other byte where the layout has its kinds and lengths: the walk's job.
        for at in [0, 1, 4, 5, 6, 8, 9, 10, 11] {
            let mut other = windows;
            other[at] ^= 0x40;
            assert_eq!(parse_windows(&other), None, "byte {at}");
        }
    }

    #[test]
    fn md5_ao_and_mptcp_are_the_kernels() {
        // TCP-MD5 after MSS, as BGP speakers send it: 18 bytes.
        let mut md5 = [0u8; 22];
        md5[..6].copy_from_slice(&[2, 4, 5, 0xb4, 19, 18]);
        assert!(parse(&md5).kernel_only);
        assert!(parse(&[29, 4, 1, 2]).kernel_only);
        // MP_CAPABLE in a SYN: 12 bytes.
        assert!(parse(&[30, 12, 0, 0x81, 0, 0, 0, 0, 0, 0, 0, 0]).kernel_only);
        assert!(!parse(&LINUX_SYN).kernel_only);
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
        let parsed = parse(&[3, 3, 15]);
        assert_eq!((parsed.wscale_ok, parsed.snd_wscale), (true, 14));
    }

    #[test]
    fn wrong_size_is_skipped_and_parsing_goes_on() {
        // An MSS of size 3 is ignored; the SACK_PERM after it still counts.
        assert_eq!(
            parse(&[2, 3, 5, 4, 2]),
            SynOptions {
                sack_ok: true,
                ..SynOptions::default()
            }
        );
    }

    #[test]
    fn silly_or_overlong_size_stops_parsing() {
        assert_eq!(
            parse(&[4, 2, 3, 1, 9]),
            SynOptions {
                sack_ok: true,
                ..Default::default()
            }
        );
        assert_eq!(
            parse(&[4, 2, 3, 0]),
            SynOptions {
                sack_ok: true,
                ..Default::default()
            }
        );
        assert_eq!(
            parse(&[4, 2, 8, 10, 0, 0]),
            SynOptions {
                sack_ok: true,
                ..Default::default()
            }
        );
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
