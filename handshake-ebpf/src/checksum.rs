//! Verifying a SYN's checksums before answering it: a SYN-ACK to a corrupted SYN would
//! reflect garbage (a flipped address bit answers a stranger) and hand out a cookie for a
//! segment the kernel itself would discard (`tcp_checksum_complete` in `tcp_v4_do_rcv`).
//!
//! The sums run in `bpf_loop` steps over `bpf_xdp_load_bytes` copies (see
//! handshake-common's `checksum::sum_step`): the segment's length is only known at run
//! time, and a loop over it in the program would have the verifier walk every length.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_csum_diff, bpf_loop, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use handshake_common::checksum::{self, CHUNK_LEN, Summing, add_wide, pseudo_tail, wide_verifies};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{
    calls::{self, Call},
    headers::{Family, Segment, ptr_at},
};

/// The longest range summed: a full-size segment at a 1500-byte MTU. A SYN carrying more
/// (a Fast Open SYN on a jumbo-frame link) goes to the kernel unverified.
///
/// A Fast Open SYN may carry a full segment of data; longer sums would only cost time.
pub const MAX_SUMMED_LEN: usize = 1536;

pub enum Verdict {
    Verified,
    Bad,
    TooLong,
}

/// Whether the IPv4 header (with its options) and the TCP segment (header, options,
/// payload, under its pseudo-header) both verify.
#[inline(always)]
pub fn verify<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> Verdict {
    if let Some(verified) = verifies_fast::<L2>(ctx, segment) {
        return if verified {
            Verdict::Verified
        } else {
            Verdict::Bad
        };
    }
    if segment.segment_len > MAX_SUMMED_LEN {
        return Verdict::TooLong;
    }
    if verifies::<L2>(ctx, segment) {
        Verdict::Verified
    } else {
        Verdict::Bad
    }
}

/// The common SYN, no payload and no IPv4 options, summed with one `bpf_csum_diff` at a
/// constant length: a third of the cost of the `bpf_loop` walk below, which stays for the
/// rest. `None` when the fast path does not apply.
///
/// For IPv4 the one sum runs from the IP header through the TCP header: once the IP header
/// alone is seen to sum to all ones (negative zero, summed in the program: five words),
/// adding it changes no one's complement sum (RFC 1071 2), so the same call verifies the
/// TCP segment under its pseudo-header.
#[inline(always)]
fn verifies_fast<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> Option<bool> {
    if segment.segment_len != segment.tcp_header_len {
        return None;
    }
    let start = match segment.family {
        Family::Ipv4 => {
            if segment.tcp_offset != L2 + Ipv4Hdr::LEN {
                return None;
            }
            let ip = unsafe { &*ptr_at::<[u8; Ipv4Hdr::LEN]>(ctx, L2)? };
            if !wide_verifies(add_wide(0, ip)) {
                return Some(false);
            }
            L2
        }
        Family::Ipv6 => segment.tcp_offset,
    };
    let ip_len = segment.tcp_offset - start;
    let summed = match ip_len + segment.tcp_header_len {
        20 => csum_diff::<20>(ctx, start),
        24 => csum_diff::<24>(ctx, start),
        28 => csum_diff::<28>(ctx, start),
        32 => csum_diff::<32>(ctx, start),
        36 => csum_diff::<36>(ctx, start),
        40 => csum_diff::<40>(ctx, start),
        44 => csum_diff::<44>(ctx, start),
        48 => csum_diff::<48>(ctx, start),
        52 => csum_diff::<52>(ctx, start),
        56 => csum_diff::<56>(ctx, start),
        60 => csum_diff::<60>(ctx, start),
        64 => csum_diff::<64>(ctx, start),
        68 => csum_diff::<68>(ctx, start),
        72 => csum_diff::<72>(ctx, start),
        76 => csum_diff::<76>(ctx, start),
        80 => csum_diff::<80>(ctx, start),
        _ => None,
    }?;
    Some(wide_verifies(pseudo::<L2>(ctx, segment)? + summed))
}

/// The native-order partial sum of `LEN` frame bytes at `offset` (`csum_partial`, the
/// same value `add_wide` folds to). The helper wants a length the verifier knows, in
/// 4-byte words.
#[inline(always)]
fn csum_diff<const LEN: usize>(ctx: &XdpContext, offset: usize) -> Option<u64> {
    let bytes = ptr_at::<[u8; LEN]>(ctx, offset)?;
    calls::count(Call::Helper, 1);
    let sum = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, bytes as *mut u32, LEN as u32, 0) };
    (sum >= 0).then_some(sum as u64)
}

/// The `bpf_loop` walk: any IPv4 header length, any payload up to `MAX_SUMMED_LEN`.
#[inline(always)]
fn verifies<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> bool {
    if segment.family == Family::Ipv4
        && !sum(ctx, L2, segment.tcp_offset - L2, 0).is_some_and(wide_verifies)
    {
        return false;
    }
    let Some(pseudo) = pseudo::<L2>(ctx, segment) else {
        return false;
    };
    sum(ctx, segment.tcp_offset, segment.segment_len, pseudo).is_some_and(wide_verifies)
}

/// The TCP pseudo-header's sum: both addresses, the protocol and the segment length.
#[inline(always)]
fn pseudo<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> Option<u64> {
    let addresses = match segment.family {
        Family::Ipv4 => {
            let ip = unsafe { &*ptr_at::<Ipv4Hdr>(ctx, L2)? };
            add_wide(add_wide(0, &ip.src_addr), &ip.dst_addr)
        }
        Family::Ipv6 => {
            let ip = unsafe { &*ptr_at::<Ipv6Hdr>(ctx, L2)? };
            add_wide(add_wide(0, &ip.src_addr), &ip.dst_addr)
        }
    };
    Some(add_wide(
        addresses,
        &pseudo_tail(segment.segment_len as u16),
    ))
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
