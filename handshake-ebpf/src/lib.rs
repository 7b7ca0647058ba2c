//! What both XDP objects (the product's `handshake-xdp` and the benchmark's
//! `handshake-flood`, in handshake-bench-ebpf) share. The library also lets handshake-user
//! name this crate as a build-dependency, so cargo rebuilds the loader when the XDP program
//! changes.
#![no_std]

pub mod syn_ack_headers;

use aya_ebpf::programs::XdpContext;

/// A pointer to a `T` at `offset` in the frame, once the verifier can see it fits.
///
/// `data_end` is read volatile so that LLVM keeps every check: it would otherwise drop a
/// check that a later, larger one implies, but the verifier tracks bounds per pointer and
/// would then reject the access through the unchecked one.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = unsafe { core::ptr::read_volatile(&(*ctx.ctx).data_end) } as usize;
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}
