//! The third packet of a handshake: an ACK to a listener can only be valid if it echoes a
//! cookie. The kernel checks it again when it arrives; we check first so that forged ACKs
//! cost the kernel nothing (no lookup in its stack, no RST in reply).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{tcphdr, xdp_action},
    helpers::generated::bpf_tcp_check_syncookie,
    programs::XdpContext,
};
use handshake_common::{config::Config, counters::Counter};
use network_types::tcp::TcpHdr;

use crate::{
    calls::{self, Call},
    flood,
    headers::{EINVAL, Segment, ip_header, ptr_at},
    listener::{self, Socket},
    this_host,
};

/// `bpf_tcp_check_syncookie` answers -ENOENT for a cookie that does not verify, or when the
/// listener issued no cookie in the last two minutes (`tcp_synq_no_recent_overflow`), and
/// -EACCES on older kernels: either way the kernel would refuse the ACK.
const ENOENT: i64 = -2;
const EACCES: i64 = -13;

/// `slot`: the protected port's counter slot, whose flood state is asked.
pub fn check<const L2: usize>(
    ctx: &XdpContext,
    segment: &Segment,
    slot: u16,
    config: &Config,
) -> (u32, Counter) {
    let sk = match listener::lookup::<L2>(ctx, segment) {
        Socket::Listener(sk) => sk,
        Socket::Connection => return (xdp_action::XDP_PASS, Counter::PassedEstablished),
        Socket::None => return (xdp_action::XDP_PASS, Counter::AckPassedOther),
    };
    let result = check_cookie::<L2>(ctx, segment, sk as *mut c_void);
    listener::release(sk);
    match result {
        0 => (xdp_action::XDP_PASS, Counter::AckValidated),
        // Outside a flood the kernel answers it with a RST (RFC 9293 3.10.7.2), which
        // tells a client whose connection this host forgot (a reboot, a crash) at once.
        ENOENT | EACCES if !flood::on(slot, config) => {
            (xdp_action::XDP_PASS, Counter::AckPassedNoFlood)
        }
        // Only this host's ACKs are dropped: on a bridge member or a router, the ACK of
        // a neighbour's (or a routed) handshake cannot verify against our listener.
        // Asked last, so that valid ACKs pay nothing for it.
        ENOENT | EACCES if this_host::addressed_here::<L2>(ctx, segment, config) => {
            (xdp_action::XDP_DROP, Counter::AckDroppedForged)
        }
        // -EINVAL: cookies are off (`tcp_syncookies=0`), or another host's ACK during a
        // flood; the kernel decides.
        _ => (xdp_action::XDP_PASS, Counter::AckPassedOther),
    }
}

/// Unlike the SYN helper, this one reads only the fixed TCP header (seq, ack_seq, flags),
/// so one constant length is enough.
#[inline(always)]
fn check_cookie<const L2: usize>(ctx: &XdpContext, segment: &Segment, sk: *mut c_void) -> i64 {
    let (Some(th), Some((iph, iph_len))) = (
        ptr_at::<TcpHdr>(ctx, segment.tcp_offset),
        ip_header::<L2>(ctx, segment.family),
    ) else {
        return EINVAL;
    };
    calls::count(Call::Helper, 1);
    unsafe { bpf_tcp_check_syncookie(sk, iph, iph_len, th as *mut tcphdr, TcpHdr::LEN as u32) }
}
