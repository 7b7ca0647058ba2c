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
    let net = at::<*const u8>(tp, &layout.sk_net);
    if net.is_null() {
        return None;
    }
    // Each family reads only its own: IPv6 takes no TTL from the namespace (its hop limit
    // is the interface's, in `Config`).
    let (tos, ttl, pmtudisc, default_ttl, tclass, hop_limit, reflect_flow_label) = match family {
        Family::Ipv4 => (
            at::<u8>(tp, &layout.inet_tos),
            at::<i16>(tp, &layout.inet_uc_ttl),
            at::<u8>(tp, &layout.inet_pmtudisc),
            at::<u8>(net, &layout.net_ip_default_ttl),
            0,
            -1,
            false,
        ),
        Family::Ipv6 => {
            let np = at::<*const u8>(tp, &layout.inet_pinet6);
            if np.is_null() {
                return None;
            }
            let repflow = if unsafe { read_volatile(&layout.repflow_in) } == REPFLOW_IN_INET {
                shaped(tp, &layout.repflow, false)
            } else {
                shaped(np, &layout.repflow, false)
            };
            (
                0,
                -1,
                0,
                0,
                at::<u8>(np, &layout.np_tclass),
                shaped(np, &layout.np_hop_limit, true) as i16,
                repflow != 0,
            )
        }
    };
    // Linux 6.6+ scales the window by the listener's ratio; before, by the sysctl. Only
    // the one the kernel uses is read (the verifier drops the other branch).
    let (scaling_ratio, adv_win_scale) = if as_loaded(&layout.tp_scaling_ratio).present() {
        (at::<u8>(tp, &layout.tp_scaling_ratio), 0)
    } else {
        (0, at::<i32>(net, &layout.net_tcp_adv_win_scale))
    };
    let userlocks = shaped(tp, &layout.sk_userlocks, false) as u8;
    Some(Settings {
        listener: Listener {
            rcvbuf: at::<u32>(tp, &layout.sk_rcvbuf),
            rcvbuf_locked: userlocks & SOCK_RCVBUF_LOCK != 0,
            window_clamp: at::<u32>(tp, &layout.tp_window_clamp),
            user_mss: at::<u16>(tp, &layout.tp_user_mss),
            scaling_ratio,
            tos,
            ttl,
            pmtudisc,
            tclass,
            hop_limit,
            reflect_flow_label,
        },
        net: Namespace {
            timestamps: at::<u8>(net, &layout.net_tcp_timestamps),
            sack: at::<u8>(net, &layout.net_tcp_sack) != 0,
            window_scaling: at::<u8>(net, &layout.net_tcp_window_scaling) != 0,
            ecn: at::<u8>(net, &layout.net_tcp_ecn),
            default_ttl,
            tcp_rmem_max: at::<u32>(net, &layout.net_tcp_rmem_max),
            reflect_tos: at::<u8>(net, &layout.net_tcp_reflect_tos) != 0,
            adv_win_scale,
            workaround_signed_windows: at::<u8>(net, &layout.net_tcp_workaround_signed_windows)
                != 0,
        },
    })
}

/// The member `field` of the struct at `base`, read as `T`: the member's type on every
/// kernel handshake supports (the loader refuses a kernel where it differs, see
/// `kernel_layout.rs`). One load at the offset (a constant to the verifier, read volatile
/// from `.rodata` as `as_loaded` explains); decoding a size and bitfield, as `shaped`
/// does, cost ~10 more instructions per member on every SYN.
#[inline(always)]
fn at<T: Copy>(base: *const u8, field: &'static Field) -> T {
    let offset = unsafe { read_volatile(&field.offset) };
    unsafe { *(base.add(offset as usize) as *const T) }
}

/// A member whose shape differs between kernels (a bitfield on Linux 6.1, a whole byte or
/// word later: `sk_userlocks`, `hop_limit`, the reflect-flow-label bit), decoded as the
/// loader described it; sign-extended when `signed`.
#[inline(always)]
fn shaped(base: *const u8, field: &'static Field, signed: bool) -> i64 {
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

/// Where `field` is, as the loader wrote it: read volatile so that the compiler keeps the
/// load from `.rodata` (whose value it would otherwise take as the zero it was compiled
/// with), and whole, in one 8-byte load. The verifier then knows every member as a
/// constant and checks only the branch of its size.
#[inline(always)]
fn as_loaded(field: &'static Field) -> Field {
    Field::from_bytes(unsafe { read_volatile(field as *const Field as *const u64) }.to_ne_bytes())
}
