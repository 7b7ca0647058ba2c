//! Reading, per SYN, what the kernel's own SYN-ACK would take from the listener (its
//! SO_RCVBUF, TCP_WINDOW_CLAMP, TCP_MAXSEG, IP_TOS, IP_TTL, ...) and from its network
//! namespace's sysctls, so that handshake answers as the kernel would answer now, not as
//! it would have at attach.
//!
//! One helper call (`bpf_skc_to_tcp_sock`) makes the listener a typed kernel pointer;
//! every read after it is a plain load, which the verifier checks against the kernel's
//! BTF and the JIT guards (BPF_PROBE_MEM), at the offsets in `KERNEL_LAYOUT`. That global
//! lives in the program's frozen `.rodata` map, so the verifier knows each offset as a
//! constant: the only kind of offset it accepts on a kernel pointer.

use core::{ffi::c_void, ptr::read_volatile};

use aya_ebpf::{bindings::bpf_sock, helpers::generated::bpf_skc_to_tcp_sock};
use handshake_common::listener::{
    Field, KernelLayout, Listener, Namespace, REPFLOW_IN_INET, SOCK_RCVBUF_LOCK,
};

use crate::{
    calls::{self, Call},
    headers::Family,
};

/// Written by the loader from the running kernel's BTF (`kernel_layout.rs`).
#[unsafe(no_mangle)]
static KERNEL_LAYOUT: KernelLayout = KernelLayout::UNSET;

pub struct Settings {
    pub listener: Listener,
    pub net: Namespace,
}

/// The settings of listener `sk` that matter for a SYN of `family`; `None` when the
/// loader wrote no layout or the socket is not a full TCP socket.
///
/// All are read for every SYN, also those only a SYN-ACK with timestamps uses (SACK,
/// window scaling, ECN, `tcp_rmem[2]`): skipping those for a SYN without timestamps
/// saves four loads but splits every later path in two for the verifier (6.18 explored
/// 456k instructions instead of 311k, near the suite's 500k budget).
#[inline(always)]
pub fn read(sk: *mut bpf_sock, family: Family) -> Option<Settings> {
    if unsafe { read_volatile(&KERNEL_LAYOUT.loaded) } == 0 {
        return None;
    }
    calls::count(Call::Helper, 1);
    let tp = unsafe { bpf_skc_to_tcp_sock(sk as *mut c_void) } as *const u8;
    if tp.is_null() {
        return None;
    }
    let layout = &KERNEL_LAYOUT;
    let net = unsafe { pointer(tp, &layout.sk_net) };
    if net.is_null() {
        return None;
    }
    // Each family reads only its own: IPv6 takes no TTL from the namespace (its hop limit
    // is the interface's, in `Config`).
    let (tos, ttl, pmtudisc, default_ttl, tclass, hop_limit, reflect_flow_label) = match family {
        Family::Ipv4 => (
            int(tp, &layout.inet_tos) as u8,
            signed(tp, &layout.inet_uc_ttl) as i16,
            int(tp, &layout.inet_pmtudisc) as u8,
            int(net, &layout.net_ip_default_ttl) as u8,
            0,
            -1,
            false,
        ),
        Family::Ipv6 => {
            let np = unsafe { pointer(tp, &layout.inet_pinet6) };
            if np.is_null() {
                return None;
            }
            let repflow = if unsafe { read_volatile(&layout.repflow_in) } == REPFLOW_IN_INET {
                int(tp, &layout.repflow)
            } else {
                int(np, &layout.repflow)
            };
            (
                0,
                -1,
                0,
                0,
                int(np, &layout.np_tclass) as u8,
                signed(np, &layout.np_hop_limit) as i16,
                repflow != 0,
            )
        }
    };
    // Linux 6.6+ scales the window by the listener's ratio; before, by the sysctl. Only
    // the one the kernel uses is read (the verifier drops the other branch).
    let (scaling_ratio, adv_win_scale) = if as_loaded(&layout.tp_scaling_ratio).present() {
        (int(tp, &layout.tp_scaling_ratio) as u8, 0)
    } else {
        (0, signed(net, &layout.net_tcp_adv_win_scale) as i32)
    };
    Some(Settings {
        listener: Listener {
            rcvbuf: int(tp, &layout.sk_rcvbuf) as u32,
            rcvbuf_locked: int(tp, &layout.sk_userlocks) as u8 & SOCK_RCVBUF_LOCK != 0,
            window_clamp: int(tp, &layout.tp_window_clamp) as u32,
            user_mss: int(tp, &layout.tp_user_mss) as u16,
            scaling_ratio,
            tos,
            ttl,
            pmtudisc,
            tclass,
            hop_limit,
            reflect_flow_label,
        },
        net: Namespace {
            timestamps: int(net, &layout.net_tcp_timestamps) as u8,
            sack: int(net, &layout.net_tcp_sack) != 0,
            window_scaling: int(net, &layout.net_tcp_window_scaling) != 0,
            ecn: int(net, &layout.net_tcp_ecn) as u8,
            default_ttl,
            tcp_rmem_max: int(net, &layout.net_tcp_rmem_max) as u32,
            reflect_tos: int(net, &layout.net_tcp_reflect_tos) != 0,
            adv_win_scale,
            workaround_signed_windows: int(net, &layout.net_tcp_workaround_signed_windows) != 0,
        },
    })
}

#[inline(always)]
fn int(base: *const u8, field: &'static Field) -> i64 {
    unsafe { load(base, field, false) }
}

#[inline(always)]
fn signed(base: *const u8, field: &'static Field) -> i64 {
    unsafe { load(base, field, true) }
}

/// The member `field` of the struct at `base`.
#[inline(always)]
unsafe fn load(base: *const u8, field: &'static Field, signed: bool) -> i64 {
    let field = as_loaded(field);
    let at = unsafe { base.add(field.offset as usize) };
    let raw = unsafe {
        match field.size {
            1 => u64::from(*at),
            2 => u64::from(*(at as *const u16)),
            4 => u64::from(*(at as *const u32)),
            _ => return 0,
        }
    };
    field.value(raw, signed)
}

#[inline(always)]
unsafe fn pointer(base: *const u8, field: &'static Field) -> *const u8 {
    unsafe { *(base.add(as_loaded(field).offset as usize) as *const *const u8) }
}

/// Where `field` is, as the loader wrote it: read volatile so that the compiler keeps the
/// load from `.rodata` (whose value it would otherwise take as the zero it was compiled
/// with), and whole, in one 8-byte load. The verifier then knows every member as a
/// constant and checks only the branch of its size.
#[inline(always)]
fn as_loaded(field: &'static Field) -> Field {
    Field::from_bytes(unsafe { read_volatile(field as *const Field as *const u64) }.to_ne_bytes())
}
