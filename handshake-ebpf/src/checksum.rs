//! Verifying a SYN's checksums before answering it: a SYN-ACK to a corrupted SYN would
//! reflect garbage (a flipped address bit answers a stranger) and hand out a cookie for a
//! segment the kernel itself would discard (`tcp_checksum_complete` in `tcp_v4_do_rcv`).
//!
//! The common SYN (no payload, no IPv4 options) is summed in the program, one unrolled
//! sum per header length. Any other runs in `bpf_loop` steps over `bpf_xdp_load_bytes`
//! copies (see handshake-common's `checksum::sum_chunk`): its length is only known at
//! run time, and a loop over it in the program would have the verifier walk every length.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_loop, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use handshake_common::checksum::{self, CHUNK_LEN, Summing, add_wide, pseudo_tail, wide_verifies};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{
    calls::{self, Call},
    headers::{Family, IPV4_ADDRS, IPV6_ADDRS, Segment, ptr_at},
};

/// The longest range summed: a full-size segment at a 1500-byte MTU. A SYN carrying more
/// (a Fast Open SYN on a jumbo-frame link) goes to the kernel unverified.
///
/// A Fast Open SYN may carry a full segment of data; longer sums would only cost time.
pub const MAX_SUMMED_LEN: usize = 1536;

pub enum Verdict {
    /// With the sum of the source and destination addresses, which the SYN-ACK's
    /// checksums take again (swapped, they sum the same).
    Verified {
        addresses: u64,
    },
    Bad,
    TooLong,
}

/// Whether the IPv4 header (with its options) and the TCP segment (header, options,
/// payload, under its pseudo-header) both verify.
#[inline(always)]
pub fn verify<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> Verdict {
    let Some(addresses) = addresses::<L2>(ctx, segment.family) else {
        return Verdict::Bad;
    };
    let pseudo = add_wide(addresses, &pseudo_tail(segment.segment_len as u16));
    let verified = match verifies_fast::<L2>(ctx, segment, pseudo) {
        Some(verified) => verified,
        None if segment.segment_len > MAX_SUMMED_LEN => return Verdict::TooLong,
        None => verifies::<L2>(ctx, segment, pseudo),
    };
    if verified {
        Verdict::Verified { addresses }
    } else {
        Verdict::Bad
    }
}

/// The sum of the source and destination addresses, which lie side by side in both IP
/// headers.
#[inline(always)]
fn addresses<const L2: usize>(ctx: &XdpContext, family: Family) -> Option<u64> {
    match family {
        Family::Ipv4 => Some(add_wide(0, unsafe {
            &*ptr_at::<[u8; 8]>(ctx, L2 + IPV4_ADDRS)?
        })),
        Family::Ipv6 => Some(add_wide(0, unsafe {
            &*ptr_at::<[u8; 32]>(ctx, L2 + IPV6_ADDRS)?
        })),
    }
}

/// The common SYN, no payload and no IPv4 options, summed in the program: its header is
/// 20 to 60 bytes, one constant length per arm below, so that the verifier sees every
/// load inside the packet and LLVM unrolls each sum into word loads and adds (no helper
/// call: `bpf_csum_diff` cost one, ~40 ns on hosts with return thunks). `None` when the
/// fast path does not apply: the `bpf_loop` walk below takes the rest.
#[inline(always)]
fn verifies_fast<const L2: usize>(
    ctx: &XdpContext,
    segment: &Segment,
    pseudo: u64,
) -> Option<bool> {
    if segment.segment_len != segment.tcp_header_len {
        return None;
    }
    let tcp_offset = match segment.family {
        Family::Ipv4 => {
            if segment.tcp_offset != L2 + Ipv4Hdr::LEN {
                return None;
            }
            let ip = unsafe { &*ptr_at::<[u8; Ipv4Hdr::LEN]>(ctx, L2)? };
            if !wide_verifies(add_wide(0, ip)) {
                return Some(false);
            }
            L2 + Ipv4Hdr::LEN
        }
        Family::Ipv6 => L2 + Ipv6Hdr::LEN,
    };
    let summed = match segment.tcp_header_len {
        20 => sum_at::<20>(ctx, tcp_offset),
        24 => sum_at::<24>(ctx, tcp_offset),
        28 => sum_at::<28>(ctx, tcp_offset),
        32 => sum_at::<32>(ctx, tcp_offset),
        36 => sum_at::<36>(ctx, tcp_offset),
        40 => sum_at::<40>(ctx, tcp_offset),
        44 => sum_at::<44>(ctx, tcp_offset),
        48 => sum_at::<48>(ctx, tcp_offset),
        52 => sum_at::<52>(ctx, tcp_offset),
        56 => sum_at::<56>(ctx, tcp_offset),
        60 => sum_at::<60>(ctx, tcp_offset),
        _ => None,
    }?;
    Some(wide_verifies(pseudo + summed))
}

/// The unfolded native-order sum of `LEN` frame bytes at `offset`.
#[inline(always)]
fn sum_at<const LEN: usize>(ctx: &XdpContext, offset: usize) -> Option<u64> {
    Some(add_wide(0, unsafe { &*ptr_at::<[u8; LEN]>(ctx, offset)? }))
}

/// The `bpf_loop` walk: any IPv4 header length, any payload up to `MAX_SUMMED_LEN`.
#[inline(always)]
fn verifies<const L2: usize>(ctx: &XdpContext, segment: &Segment, pseudo: u64) -> bool {
    if segment.family == Family::Ipv4
        && !sum(ctx, L2, segment.tcp_offset - L2, 0).is_some_and(wide_verifies)
    {
        return false;
    }
    sum(ctx, segment.tcp_offset, segment.segment_len, pseudo).is_some_and(wide_verifies)
}

#[repr(C)]
struct Range {
    ctx: *mut xdp_md,
    start: u32,
    len: usize,
    summing: Summing,
}

/// The unfolded sum of `len` frame bytes from `start`, added to `initial`.
#[inline(always)]
fn sum(ctx: &XdpContext, start: usize, len: usize, initial: u64) -> Option<u64> {
    let mut range = Range {
        ctx: ctx.ctx,
        start: start as u32,
        len,
        summing: Summing {
            sum: initial,
            failed: false,
        },
    };
    let chunks = checksum::chunks(len) as u32;
    calls::count(Call::Helper, 1);
    let done = unsafe {
        bpf_loop(
            chunks,
            step as *const () as *mut c_void,
            &mut range as *mut Range as *mut c_void,
            0,
        )
    };
    let summing = range.summing;
    (!summing.failed && done == i64::from(chunks)).then_some(summing.sum)
}

/// bpf_loop's callback: 0 goes on, 1 stops.
#[inline(never)]
extern "C" fn step(index: u64, range: *mut c_void) -> i64 {
    // The callback itself, and its load.
    calls::count(Call::Subprogram, 1);
    calls::count(Call::Helper, 1);
    let range = unsafe { &mut *(range as *mut Range) };
    let (ctx, start) = (range.ctx, range.start);
    let load = |offset: usize, chunk: &mut [u8; CHUNK_LEN], n: usize| {
        // The verifier must see 1 <= n <= CHUNK_LEN on the register passed. Before 6.8 it
        // learns no lower bound from `n != 0`, so bound `n - 1` from above instead (one
        // unsigned test gives both bounds) and pass `n - 1 + 1`. The volatile read keeps
        // LLVM from folding that back into `n`, whose register was never bounded.
        let below = unsafe { core::ptr::read_volatile(&n.wrapping_sub(1)) };
        if below >= CHUNK_LEN {
            return false;
        }
        unsafe {
            bpf_xdp_load_bytes(
                ctx,
                start + offset as u32,
                chunk.as_mut_ptr() as *mut c_void,
                below as u32 + 1,
            ) == 0
        }
    };
    if checksum::sum_chunk(&mut range.summing, index as usize, range.len, load) {
        0
    } else {
        1
    }
}
