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
    helpers::generated::{bpf_loop, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use handshake_common::checksum::{self, CHUNK_LEN, Summing, add_wide, pseudo_tail, wide_verifies};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::headers::{Family, Segment, ptr_at};

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
    if segment.segment_len > MAX_SUMMED_LEN {
        return Verdict::TooLong;
    }
    if verifies::<L2>(ctx, segment) {
        Verdict::Verified
    } else {
        Verdict::Bad
    }
}

#[inline(always)]
fn verifies<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> bool {
    let pseudo_addresses = match segment.family {
        Family::Ipv4 => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, L2) else {
                return false;
            };
            let header = sum(ctx, L2, segment.tcp_offset - L2, 0);
            if !header.is_some_and(wide_verifies) {
                return false;
            }
            let ip = unsafe { &*ip };
            add_wide(add_wide(0, &ip.src_addr), &ip.dst_addr)
        }
        Family::Ipv6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, L2) else {
                return false;
            };
            let ip = unsafe { &*ip };
            add_wide(add_wide(0, &ip.src_addr), &ip.dst_addr)
        }
    };
    let pseudo = add_wide(pseudo_addresses, &pseudo_tail(segment.segment_len as u16));
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
    let range = unsafe { &mut *(range as *mut Range) };
    let (ctx, start) = (range.ctx, range.start);
    let load = |offset: usize, chunk: &mut [u8; CHUNK_LEN], n: usize| {
        // `n` goes through memory so that LLVM cannot fold the checks below into what it
        // knows of `n`: the verifier must see 1 <= n <= CHUNK_LEN on the register itself.
        let n = unsafe { core::ptr::read_volatile(&n) };
        if n == 0 || n > CHUNK_LEN {
            return false;
        }
        unsafe {
            bpf_xdp_load_bytes(
                ctx,
                start + offset as u32,
                chunk.as_mut_ptr() as *mut c_void,
                n as u32,
            ) == 0
        }
    };
    if checksum::sum_chunk(&mut range.summing, index as usize, range.len, load) {
        0
    } else {
        1
    }
}
