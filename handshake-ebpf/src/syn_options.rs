//! Reading the SYN's TCP options from the packet: for the timestamps the SYN-ACK may
//! carry, and for options only the kernel can answer (TCP-MD5, TCP-AO, MPTCP).
//!
//! No options, MSS alone and the layouts of Linux and Windows are read straight from the
//! packet at a constant offset: no helper call. (Each such layout costs the verifier about
//! 80k instructions of its budget: Apple's is walked.) Any other layout is walked one option per `bpf_loop` callback: a plain loop over up to
//! 40 bytes of options had the verifier walk every layout path and stop at its
//! million-instruction limit; a callback is verified as one step.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_loop, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use handshake_common::{
    syn_options::{self, LINUX_LEN, SynOptions, WINDOWS_LEN, Walk},
    tcp::{HEADER_LEN, MAX_OPTIONS_LEN, OPT_MSS},
};

use crate::{
    calls::{self, Call},
    headers::ptr_at,
};

#[repr(C)]
struct OptionsWalk {
    ctx: *mut xdp_md,
    /// Offset of the first option byte in the frame.
    start: u32,
    len: usize,
    walk: Walk,
}

#[inline(always)]
pub fn parse(ctx: &XdpContext, tcp_offset: usize, tcp_header_len: usize) -> SynOptions {
    if tcp_header_len == HEADER_LEN {
        return SynOptions::default();
    }
    if tcp_header_len == HEADER_LEN + 4
        && let Some(mss) = ptr_at::<[u8; 4]>(ctx, tcp_offset + HEADER_LEN)
        && let [OPT_MSS, 4, high, low] = unsafe { *mss }
    {
        return SynOptions {
            mss: u16::from_be_bytes([high, low]),
            ..SynOptions::default()
        };
    }
    if tcp_header_len == HEADER_LEN + LINUX_LEN
        && let Some(options) = ptr_at::<[u8; LINUX_LEN]>(ctx, tcp_offset + HEADER_LEN)
        && let Some(parsed) = syn_options::parse_linux(unsafe { &*options })
    {
        return parsed;
    }
    if tcp_header_len == HEADER_LEN + WINDOWS_LEN
        && let Some(options) = ptr_at::<[u8; WINDOWS_LEN]>(ctx, tcp_offset + HEADER_LEN)
        && let Some(parsed) = syn_options::parse_windows(unsafe { &*options })
    {
        return parsed;
    }

    walk(ctx, tcp_offset, tcp_header_len)
}

#[inline(never)]
fn walk(ctx: &XdpContext, tcp_offset: usize, tcp_header_len: usize) -> SynOptions {
    calls::count(Call::Subprogram, 1);
    calls::count(Call::Helper, 1);
    let mut walk = OptionsWalk {
        ctx: ctx.ctx,
        start: (tcp_offset + HEADER_LEN) as u32,
        len: tcp_header_len.saturating_sub(HEADER_LEN),
        walk: Walk::default(),
    };
    unsafe {
        bpf_loop(
            MAX_OPTIONS_LEN as u32,
            step as *const () as *mut c_void,
            &mut walk as *mut OptionsWalk as *mut c_void,
            0,
        )
    };
    walk.walk.parsed
}

/// bpf_loop's callback: 0 goes on, 1 stops.
#[inline(never)]
extern "C" fn step(_index: u64, walk: *mut c_void) -> i64 {
    calls::count(Call::Subprogram, 1);
    let walk = unsafe { &mut *(walk as *mut OptionsWalk) };
    let (ctx, start) = (walk.ctx, walk.start);
    let load = |offset: usize, out: &mut [u8]| unsafe {
        calls::count(Call::Helper, 1);
        bpf_xdp_load_bytes(
            ctx,
            start + offset as u32,
            out.as_mut_ptr() as *mut c_void,
            out.len() as u32,
        ) == 0
    };
    if syn_options::step(&mut walk.walk, walk.len, load) {
        0
    } else {
        1
    }
}
