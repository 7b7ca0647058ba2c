//! `cookie_only`: what answering a SYN costs at the very least, the listener lookup and
//! `bpf_tcp_gen_syncookie`, with no parsing beyond fixed offsets and no rewrite. The
//! microbenchmarks time handshake's SYN path against it.
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
        [0x08, 0x00] => cookie::<20>(&ctx),
        [0x86, 0xdd] => cookie::<40>(&ctx),
        _ => {}
    }
    xdp_action::XDP_PASS
}

#[inline(always)]
fn cookie<const IP_LEN: usize>(ctx: &XdpContext) {
    let Some(ip) = ptr_at::<[u8; IP_LEN]>(ctx, 14) else {
        return;
    };
    let Some(th) = ptr_at::<[u8; TH_LEN]>(ctx, 14 + IP_LEN) else {
        return;
    };
    let (ip_bytes, th_bytes) = unsafe { (&*ip, &*th) };
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let tuple_size = if IP_LEN == 20 {
        let v4 = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
        v4.saddr = u32::from_ne_bytes([ip_bytes[12], ip_bytes[13], ip_bytes[14], ip_bytes[15]]);
        v4.daddr = u32::from_ne_bytes([ip_bytes[16], ip_bytes[17], ip_bytes[18], ip_bytes[19]]);
        v4.sport = u16::from_ne_bytes([th_bytes[0], th_bytes[1]]);
        v4.dport = u16::from_ne_bytes([th_bytes[2], th_bytes[3]]);
        core::mem::size_of_val(v4)
    } else {
        let v6 = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
        for word in 0..4 {
            let at = 8 + word * 4;
            v6.saddr[word] = u32::from_ne_bytes([
                ip_bytes[at],
                ip_bytes[at + 1],
                ip_bytes[at + 2],
                ip_bytes[at + 3],
            ]);
            let at = 24 + word * 4;
            v6.daddr[word] = u32::from_ne_bytes([
                ip_bytes[at],
                ip_bytes[at + 1],
                ip_bytes[at + 2],
                ip_bytes[at + 3],
            ]);
        }
        v6.sport = u16::from_ne_bytes([th_bytes[0], th_bytes[1]]);
        v6.dport = u16::from_ne_bytes([th_bytes[2], th_bytes[3]]);
        core::mem::size_of_val(v6)
    };
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx as *mut c_void,
            &mut tuple,
            tuple_size as u32,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return;
    }
    unsafe {
        bpf_tcp_gen_syncookie(
            sk as *mut c_void,
            ip as *mut c_void,
            IP_LEN as u32,
            th as *mut tcphdr,
            TH_LEN as u32,
        );
        bpf_sk_release(sk as *mut c_void);
    }
}
