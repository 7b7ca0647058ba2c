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
use network_types::tcp::TcpHdr;

use crate::{
    aligned::Aligned,
    calls::{self, Call},
    headers::{Family, IPV4_ADDRS, IPV6_ADDRS, Segment, ptr_at},
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
    let ports = u32::from_ne_bytes(unsafe { *(th as *const [u8; 4]) });
    // `bpf_sock_tuple` as whole 8-byte words at an 8-byte boundary (see aligned.rs): the
    // addresses, then the ports. Not zeroed first: that is a `memset` call (a BPF-to-BPF
    // call) per SYN; every byte the helper reads (`tuple_size` of them) is written below.
    let mut tuple = MaybeUninit::<Aligned<[u64; 5]>>::uninit();
    let words = tuple.as_mut_ptr() as *mut u64;
    // The source and destination addresses lie side by side in both IP headers, in the
    // tuple's order; the ports follow them in the tuple, low address first.
    let ports = u64::from_ne_bytes(wide(ports));
    let tuple_size = match segment.family {
        Family::Ipv4 => {
            let Some(addresses) = ptr_at::<[u8; 8]>(ctx, L2 + IPV4_ADDRS) else {
                return Socket::None;
            };
            unsafe {
                *words = u64::from_ne_bytes(*addresses);
                *words.add(1) = ports;
            }
            size_of::<bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1>()
        }
        Family::Ipv6 => {
            let Some(addresses) = ptr_at::<[[u8; 8]; 4]>(ctx, L2 + IPV6_ADDRS) else {
                return Socket::None;
            };
            let addresses = unsafe { &*addresses };
            unsafe {
                for (word, bytes) in addresses.iter().enumerate() {
                    *words.add(word) = u64::from_ne_bytes(*bytes);
                }
                *words.add(4) = ports;
            }
            size_of::<bpf_sock_tuple__bindgen_ty_1__bindgen_ty_2>()
        }
    };
    // BPF_F_CURRENT_NETNS: the namespace of the device the packet arrived on.
    calls::count(Call::Helper, 1);
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            ctx.ctx as *mut c_void,
            words as *mut bpf_sock_tuple,
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

/// Four bytes as the first four of eight, whatever the byte order.
#[inline(always)]
fn wide(ports: u32) -> [u8; 8] {
    let [a, b, c, d] = ports.to_ne_bytes();
    [a, b, c, d, 0, 0, 0, 0]
}

/// Every socket the lookup returned holds a reference the verifier makes us give back.
#[inline(always)]
pub fn release(sk: *mut bpf_sock) {
    calls::count(Call::Helper, 1);
    unsafe { bpf_sk_release(sk as *mut c_void) };
}
