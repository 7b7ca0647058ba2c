//! A SYN to a protected port: ask the kernel for the cookie it would send itself, then
//! turn the SYN into that SYN-ACK.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{bpf_sock, tcphdr, xdp_action},
    helpers::generated::bpf_tcp_gen_syncookie,
    programs::XdpContext,
};
use aya_log_ebpf::warn;
use handshake_common::{
    config::Config, counters::Counter, listener as kernel, martian, syn_options::SynOptions,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

use crate::{
    calls::{self, Call},
    checksum::{self, Verdict},
    headers::{EINVAL, Family, Segment, ip_header, ptr_at},
    listener::{self, Socket},
    listener_settings::{self, Settings},
    rate_limit, syn_ack, syn_options, this_host,
};

/// -ENOENT: the kernel would not send a cookie now (`tcp_syncookies=1` and the SYN queue
/// has room, or the accept queue is full), so the SYN is the kernel's to answer.
const ENOENT: i64 = -2;

/// What the cookie helper said: the low 32 bits of its answer. (Bits 32..47 hold the MSS
/// the cookie encodes, which the SYN-ACK does not need: it advertises our MSS, and the
/// kernel cuts its window in segments of ours too.)
pub struct Cookie {
    pub cookie: u32,
}

#[inline(always)]
pub fn answer<const L2: usize>(
    ctx: &XdpContext,
    segment: &Segment,
    config: &Config,
) -> (u32, Counter) {
    if never_answered::<L2>(ctx, segment) {
        return (xdp_action::XDP_DROP, Counter::SynDroppedInvalid);
    }
    if !this_host::addressed_here::<L2>(ctx, segment, config) {
        return (xdp_action::XDP_PASS, Counter::SynPassedNotForHost);
    }
    // Off (the default), the rate limits cost this one test.
    if config.limits != 0
        && let Some(counter) = rate_limit::refused::<L2>(ctx, segment)
    {
        return (xdp_action::XDP_DROP, counter);
    }
    // IPv4 options: the kernel refuses source routes (`ip_rcv_options`) and echoes the
    // rest in its SYN-ACK (`tcp_v4_save_options`); ours would carry none.
    if segment.family == Family::Ipv4 && segment.tcp_offset != L2 + Ipv4Hdr::LEN {
        return (xdp_action::XDP_PASS, Counter::SynPassedKernelOnly);
    }
    let sk = match listener::lookup::<L2>(ctx, segment) {
        Socket::Listener(sk) => sk,
        Socket::Connection => return (xdp_action::XDP_PASS, Counter::SynPassedExisting),
        Socket::None => return (xdp_action::XDP_PASS, Counter::SynPassedNoListener),
    };
    // Checked after the lookup, which is cheaper than summing, and before the cookie,
    // whose helper marks the listener as under a flood (`tcp_synq_overflow`).
    let addresses = match checksum::verify::<L2>(ctx, segment) {
        Verdict::Verified { addresses } => addresses,
        Verdict::Bad => return passed_releasing(sk, Counter::SynPassedBadChecksum),
        Verdict::TooLong => return passed_releasing(sk, Counter::SynPassedError),
    };
    let options = syn_options::parse(ctx, segment.tcp_offset, segment.tcp_header_len);
    if options.kernel_only {
        return passed_releasing(sk, Counter::SynPassedKernelOnly);
    }
    let Some(settings) = listener_settings::read(sk, segment.family) else {
        return passed_releasing(sk, Counter::SynPassedError);
    };
    if !reproducible(segment, &options, &settings) {
        return passed_releasing(sk, Counter::SynPassedKernelOnly);
    }
    let cookie = generate::<L2>(ctx, segment, sk);
    listener::release(sk);
    let cookie = match cookie {
        Ok(cookie) => cookie,
        Err(ENOENT) => return (xdp_action::XDP_PASS, Counter::SynPassedNoCookie),
        Err(error) => {
            warn!(ctx, "bpf_tcp_gen_syncookie failed: {}", error);
            return (xdp_action::XDP_PASS, Counter::SynPassedError);
        }
    };
    // Dry run: counted as answered, passed as it came (see dry_run.rs).
    if config.dry_run != 0 {
        return (xdp_action::XDP_PASS, Counter::SynAckSent);
    }
    let answer = syn_ack::Answer {
        settings: &settings,
        syn: &options,
        cookie: &cookie,
        addresses,
    };
    if syn_ack::rewrite::<L2>(ctx, segment, config, &answer).is_err() {
        return (xdp_action::XDP_PASS, Counter::SynPassedError);
    }
    (xdp_action::XDP_TX, Counter::SynAckSent)
}

/// A SYN the kernel answers after all: the listener's reference given back first.
#[inline(always)]
fn passed_releasing(sk: *mut bpf_sock, counter: Counter) -> (u32, Counter) {
    listener::release(sk);
    (xdp_action::XDP_PASS, counter)
}

/// Whether the kernel's SYN-ACK to this SYN is one handshake can write. Not with
/// `tcp_timestamps=1` when the SYN offers TS: the kernel's TSval then holds a secret
/// offset (`secure_tcp_ts_off`). Not over IPv4 from a listener whose IP_MTU_DISCOVER
/// leaves DF off (or `ip_no_pmtu_disc` made it so): the kernel's SYN-ACK then has a random
/// IP ID (`ip_build_and_send_pkt`).
#[inline(always)]
fn reproducible(segment: &Segment, options: &SynOptions, settings: &Settings) -> bool {
    if options.saw_tstamp && settings.net.timestamps == 1 {
        return false;
    }
    segment.family == Family::Ipv6 || kernel::dont_fragment(&settings.listener)
}

/// SYNs whose answer would go where no answer may go (see handshake-common's `martian`),
/// or to port 0, which RFC 6335 6 reserves and no client sends from. Dropped rather than
/// passed: the kernel would discard them, and an attacker's flood of them should cost it
/// nothing.
#[inline(always)]
fn never_answered<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> bool {
    let (Some(eth), Some(th)) = (
        ptr_at::<EthHdr>(ctx, 0),
        ptr_at::<TcpHdr>(ctx, segment.tcp_offset),
    ) else {
        return true;
    };
    if martian::group_mac(unsafe { (*eth).dst_addr }) || unsafe { (*th).source } == [0, 0] {
        return true;
    }
    match segment.family {
        Family::Ipv4 => match ptr_at::<Ipv4Hdr>(ctx, L2) {
            Some(ip) => unsafe { martian::ipv4((*ip).src_addr, (*ip).dst_addr) },
            None => true,
        },
        Family::Ipv6 => match ptr_at::<Ipv6Hdr>(ctx, L2) {
            Some(ip) => unsafe { martian::ipv6((*ip).src_addr, (*ip).dst_addr) },
            None => true,
        },
    }
}

/// The helper insists that `th_len` equals the data offset and that the verifier can see
/// all of it inside the packet, so each of the eleven possible lengths gets its own
/// constant-length bounds check and call.
#[inline(always)]
fn generate<const L2: usize>(
    ctx: &XdpContext,
    segment: &Segment,
    sk: *mut bpf_sock,
) -> Result<Cookie, i64> {
    match segment.tcp_header_len {
        20 => generate_with::<L2, 20>(ctx, segment, sk),
        24 => generate_with::<L2, 24>(ctx, segment, sk),
        28 => generate_with::<L2, 28>(ctx, segment, sk),
        32 => generate_with::<L2, 32>(ctx, segment, sk),
        36 => generate_with::<L2, 36>(ctx, segment, sk),
        40 => generate_with::<L2, 40>(ctx, segment, sk),
        44 => generate_with::<L2, 44>(ctx, segment, sk),
        48 => generate_with::<L2, 48>(ctx, segment, sk),
        52 => generate_with::<L2, 52>(ctx, segment, sk),
        56 => generate_with::<L2, 56>(ctx, segment, sk),
        60 => generate_with::<L2, 60>(ctx, segment, sk),
        _ => Err(EINVAL),
    }
}

#[inline(always)]
fn generate_with<const L2: usize, const TH_LEN: usize>(
    ctx: &XdpContext,
    segment: &Segment,
    sk: *mut bpf_sock,
) -> Result<Cookie, i64> {
    let th = ptr_at::<[u8; TH_LEN]>(ctx, segment.tcp_offset).ok_or(EINVAL)?;
    let (iph, iph_len) = ip_header::<L2>(ctx, segment.family).ok_or(EINVAL)?;
    calls::count(Call::Helper, 1);
    let result = unsafe {
        bpf_tcp_gen_syncookie(
            sk as *mut c_void,
            iph,
            iph_len,
            th as *mut tcphdr,
            TH_LEN as u32,
        )
    };
    if result < 0 {
        return Err(result);
    }
    Ok(Cookie {
        cookie: result as u32,
    })
}
