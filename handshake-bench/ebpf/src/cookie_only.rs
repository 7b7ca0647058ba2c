//! `cookie_only`: what answering a SYN costs at the very least, the listener lookup and
//! `bpf_tcp_gen_syncookie`, with no parsing beyond fixed offsets and no rewrite. The
//! microbenchmarks time handshake's SYN path against it (and `cookie_answer.rs` adds the
//! least rewrite to it).
//!
//! It takes only what the benchmark sends: IPv4 without options or IPv6 without extension
//! headers, and a TCP header of exactly 40 bytes (the options Linux puts in a SYN).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock_tuple, tcphdr, xdp_action},
    helpers::generated::{bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_gen_syncookie},
    macros::xdp,
    programs::XdpContext,
};

use crate::program::ptr_at;

const TH_LEN: usize = 40;

#[xdp]
pub fn cookie_only(ctx: XdpContext) -> u32 {
    let Some(eth) = ptr_at::<[u8; 14]>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    match unsafe { [(*eth)[12], (*eth)[13]] } {
        [0x08, 0x00] => {
            cookie::<20>(&ctx);
        }
        [0x86, 0xdd] => {
            cookie::<40>(&ctx);
        }
        _ => {}
    }
    xdp_action::XDP_PASS
}

/// The cookie the kernel gives the SYN behind an IP header of `IP_LEN` bytes, if a
/// listener takes it.
#[inline(always)]
pub fn cookie<const IP_LEN: usize>(ctx: &XdpContext) -> Option<u32> {
    let ip = ptr_at::<[u8; IP_LEN]>(ctx, 14)?;
    let th = ptr_at::<[u8; TH_LEN]>(ctx, 14 + IP_LEN)?;
    let (ip_bytes, th_bytes) = unsafe { (&*ip, &*th) };
    // The tuple as handshake writes it (handshake-ebpf's listener.rs): whole 8-byte words,
    // the addresses (side by side in both IP headers) and then the ports, not zeroed
    // first: zeroing it is a `memset` call, a BPF-to-BPF call and a byte loop, which
    // would make this floor dearer than it is.
    let word = |bytes: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        u64::from_ne_bytes(word)
    };
    let ports = {
        let [a, b, c, d] = [th_bytes[0], th_bytes[1], th_bytes[2], th_bytes[3]];
        u64::from_ne_bytes([a, b, c, d, 0, 0, 0, 0])
    };
    let mut tuple = core::mem::MaybeUninit::<[u64; 5]>::uninit();
    let words = tuple.as_mut_ptr() as *mut u64;
    let tuple_size = unsafe {
        if IP_LEN == 20 {
            *words = word(&ip_bytes[12..20]);
            *words.add(1) = ports;
            12
        } else {
            for index in 0..4 {
                *words.add(index) = word(&ip_bytes[8 + index * 8..16 + index * 8]);
            }
            *words.add(4) = ports;
            36
        }
    };
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx as *mut c_void,
            words as *mut bpf_sock_tuple,
            tuple_size,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return None;
    }
    let cookie = unsafe {
        let cookie = bpf_tcp_gen_syncookie(
            sk as *mut c_void,
            ip as *mut c_void,
            IP_LEN as u32,
            th as *mut tcphdr,
            TH_LEN as u32,
        );
        bpf_sk_release(sk as *mut c_void);
        cookie
    };
    (cookie >= 0).then_some(cookie as u32)
}
