//! Finding the socket a segment is for, the way the kernel's receive path would
//! (`bpf_skc_lookup_tcp`: established and request sockets first, then listeners).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple},
    helpers::generated::{bpf_sk_release, bpf_skc_lookup_tcp},
    programs::XdpContext,
};
use handshake_common::tcp::STATE_LISTEN;
use network_types::{
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

use crate::headers::{Family, Segment, ptr_at};

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
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let tuple_size = match segment.family {
        Family::Ipv4 => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, L2) else {
                return Socket::None;
            };
            let v4 = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
            unsafe {
                v4.saddr = u32::from_ne_bytes((*ip).src_addr);
                v4.daddr = u32::from_ne_bytes((*ip).dst_addr);
            }
            v4.sport = u16::from_ne_bytes(th.source);
            v4.dport = u16::from_ne_bytes(th.dest);
            core::mem::size_of_val(v4)
        }
        Family::Ipv6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, L2) else {
                return Socket::None;
            };
            let v6 = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
            unsafe {
                v6.saddr = core::mem::transmute::<[u8; 16], [u32; 4]>((*ip).src_addr);
                v6.daddr = core::mem::transmute::<[u8; 16], [u32; 4]>((*ip).dst_addr);
            }
            v6.sport = u16::from_ne_bytes(th.source);
            v6.dport = u16::from_ne_bytes(th.dest);
            core::mem::size_of_val(v6)
        }
    };
    // BPF_F_CURRENT_NETNS: the namespace of the device the packet arrived on.
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
    unsafe { bpf_sk_release(sk as *mut c_void) };
}
