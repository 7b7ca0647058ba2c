//! Finding the socket a segment is for, the way the kernel's receive path would
//! (`bpf_skc_lookup_tcp`: established and request sockets first, then listeners).

use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::{
    bindings::{
        BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple, bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1,
        bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2,
    },
    helpers::generated::{bpf_sk_release, bpf_skc_lookup_tcp},
    programs::XdpContext,
};
use handshake_common::tcp::STATE_LISTEN;
use network_types::{
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

use crate::{
    calls::{self, Call},
    headers::{Family, Segment, ptr_at, words},
};

/// The socket the kernel would deliver this segment to.
pub enum Socket {
    /// A listener: the segment opens, or completes, a handshake. Must be released.
    Listener(*mut bpf_sock),
    /// An established, TIME_WAIT or request socket owns this 4-tuple.
    Connection,
    /// Nothing: the kernel will answer with a RST.
    None,
}

#[inline(always)]
pub fn lookup<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> Socket {
    let Some(th) = ptr_at::<TcpHdr>(ctx, segment.tcp_offset) else {
        return Socket::None;
    };
    let th = unsafe { &*th };
    // Not zeroed first: that is a `memset` call (a BPF-to-BPF call) per SYN; every byte
    // the helper reads (`tuple_size` of them) is written below.
    let mut tuple = MaybeUninit::<bpf_sock_tuple>::uninit();
    let tuple_size = match segment.family {
        Family::Ipv4 => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, L2) else {
                return Socket::None;
            };
            let ip = unsafe { &*ip };
            let v4 = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1 {
                saddr: u32::from_ne_bytes(ip.src_addr),
                daddr: u32::from_ne_bytes(ip.dst_addr),
                sport: u16::from_ne_bytes(th.source),
                dport: u16::from_ne_bytes(th.dest),
            };
            unsafe { (*tuple.as_mut_ptr()).__bindgen_anon_1.ipv4 = v4 };
            size_of_val(&v4)
        }
        Family::Ipv6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, L2) else {
                return Socket::None;
            };
            let ip = unsafe { &*ip };
            let v6 = bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2 {
                saddr: words(&ip.src_addr),
                daddr: words(&ip.dst_addr),
                sport: u16::from_ne_bytes(th.source),
                dport: u16::from_ne_bytes(th.dest),
            };
            unsafe { (*tuple.as_mut_ptr()).__bindgen_anon_1.ipv6 = v6 };
            size_of_val(&v6)
        }
    };
    // BPF_F_CURRENT_NETNS: the namespace of the device the packet arrived on.
    calls::count(Call::Helper, 1);
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx as *mut c_void,
            tuple.as_mut_ptr(),
            tuple_size as u32,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return Socket::None;
    }
    if unsafe { (*sk).state } == STATE_LISTEN {
        return Socket::Listener(sk);
    }
    release(sk);
    Socket::Connection
}

/// Every socket the lookup returned holds a reference the verifier makes us give back.
#[inline(always)]
pub fn release(sk: *mut bpf_sock) {
    calls::count(Call::Helper, 1);
    unsafe { bpf_sk_release(sk as *mut c_void) };
}
