//! The SYN rate limits: token buckets (handshake-common's `rate_limit`) per source host
//! and network, and per SYN-ACK destination network and interface, in LRU hash maps.
//!
//! Off by default; then the SYN path pays one test of `Config::limits` and nothing here
//! runs. On, a SYN costs one `bpf_ktime_get_ns` and one or two map helper calls per
//! bucket that is on.
//!
//! The reflection caps are checked here, before the listener and the cookie, so a SYN
//! that the kernel then answers itself (passed: no cookie mode, no listener) takes a
//! token too: the cap bounds every reply a spoofed flood can draw at one network, and a
//! refused SYN costs no further helper call.

use aya_ebpf::{
    bindings::xdp_md, helpers::generated::bpf_ktime_get_ns, macros::map, maps::LruHashMap,
    programs::XdpContext,
};
use handshake_common::{
    config::{LIMIT_DESTINATION, LIMIT_NETWORK, LIMIT_SOURCE, LIMIT_SYN_ACKS},
    counters::Counter,
    rate_limit::{BUCKETS, Bucket, BucketKey, HOST_V4, HOST_V6, NETWORK_V4, NETWORK_V6, Rate},
};
use network_types::eth::EthHdr;

use crate::{
    calls::{self, Call},
    headers::{Family, Segment, ptr_at},
    maps,
};

/// Source hosts' and networks' buckets.
#[map(name = "SOURCE_BUCKETS")]
static SOURCE_BUCKETS: LruHashMap<BucketKey, Bucket> = LruHashMap::with_max_entries(BUCKETS, 0);
/// Destination networks' buckets and the interface's (`BucketKey::INTERFACE`, the /0, used by
/// every SYN-ACK, so never the least recently used). A map of their own, so that a flood
/// of spoofed sources evicts no destination's bucket.
#[map(name = "SYN_ACK_BUCKETS")]
static SYN_ACK_BUCKETS: LruHashMap<BucketKey, Bucket> = LruHashMap::with_max_entries(BUCKETS, 0);

/// The counter of a SYN a limit refuses, `None` when every limit that is on lets it
/// through.
#[inline(always)]
pub fn refused<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> Option<Counter> {
    // `limited` reads the source address after an untagged Ethernet header, which is
    // where every frame has it by now (vlan.rs lifts the tags before the handling).
    const { assert!(L2 == EthHdr::LEN) };
    let family = match segment.family {
        Family::Ipv4 => 4,
        Family::Ipv6 => 6,
    };
    calls::count(Call::Subprogram, 1);
    match limited(ctx.ctx, family) {
        RATE_LIMITED => Some(Counter::SynDroppedRateLimited),
        REFLECTION_CAP => Some(Counter::SynDroppedReflectionCap),
        _ => None,
    }
}

/// Where the source address starts in an IPv4 and an IPv6 header.
const IPV4_SOURCE: usize = 12;
const IPV6_SOURCE: usize = 8;

const RATE_LIMITED: u32 = 1;
const REFLECTION_CAP: u32 = 2;

/// A global function (exported, as `handle` is): the verifier checks its paths through
/// the buckets once, on their own, rather than once more for every path of the SYN code
/// after them (inlined, they took the program from ~395k explored instructions to
/// ~735k). Its arguments are the context and the family (4 or 6), which the verifier
/// takes on any kernel; the source address passed as scalars instead was, in one build,
/// partly left unset by LLVM, which the verifier refuses.
///
/// The host's bucket goes before its network's, and the destination's before the
/// interface's: a refused SYN takes no token from the wider bucket, so one flooding host
/// or one victim network does not use up what the others share.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn limited(ctx: *mut xdp_md, family: u32) -> u32 {
    let ctx = &XdpContext::new(ctx);
    let Some(config) = maps::config() else {
        return 0;
    };
    let limits = config.limits;
    // IPv4: the source and the 12 bytes after it (the destination and the start of the
    // TCP header, there in every segment), all but the source cut away by the prefix.
    let (source, host_len, network_len) = if family == 4 {
        (IPV4_SOURCE, HOST_V4, NETWORK_V4)
    } else {
        (IPV6_SOURCE, HOST_V6, NETWORK_V6)
    };
    let Some(address) = ptr_at::<[u8; 16]>(ctx, EthHdr::LEN + source) else {
        return 0;
    };
    calls::count(Call::Helper, 1);
    let now = unsafe { bpf_ktime_get_ns() };
    // One key, narrowed from the host to its network to the interface: the stack of this
    // function adds to `handle`'s and the entry's, and 6.1 allows 512 bytes for all three.
    let mut key = BucketKey::prefix(unsafe { &*address }, host_len);
    if limits & LIMIT_SOURCE != 0 && !take(&SOURCE_BUCKETS, &key, now, config.syn_per_source) {
        return RATE_LIMITED;
    }
    key.narrow(network_len);
    if limits & LIMIT_NETWORK != 0 && !take(&SOURCE_BUCKETS, &key, now, config.syn_per_network) {
        return RATE_LIMITED;
    }
    // The SYN-ACK's destination is the SYN's source.
    if limits & LIMIT_DESTINATION != 0
        && !take(&SYN_ACK_BUCKETS, &key, now, config.syn_acks_per_destination)
    {
        return REFLECTION_CAP;
    }
    key.narrow(0);
    if limits & LIMIT_SYN_ACKS != 0 && !take(&SYN_ACK_BUCKETS, &key, now, config.syn_acks) {
        return REFLECTION_CAP;
    }
    0
}

/// Takes a token from `key`'s bucket, made full if it is new.
///
/// The buckets are shared by every CPU and updated without a lock: two CPUs at one bucket
/// at once may both refill and take from the same tokens, so a limit may let a few SYNs
/// more through than its rate while several CPUs serve one source. That is accepted: a
/// bpf_spin_lock would cost two helper calls per bucket, and per-CPU buckets
/// (LRU_PERCPU_HASH) would multiply every limit by the CPUs a flood is spread over.
#[inline(always)]
fn take(buckets: &LruHashMap<BucketKey, Bucket>, key: &BucketKey, now: u64, rate: Rate) -> bool {
    calls::count(Call::Helper, 1);
    if let Some(bucket) = buckets.get_ptr_mut(key) {
        return unsafe { (*bucket).take(now, rate) };
    }
    let mut bucket = Bucket::full(now, rate);
    let taken = bucket.take(now, rate);
    calls::count(Call::Helper, 1);
    // A full map evicts its least recently used entry; an insert that fails anyway only
    // means the next SYN finds no bucket and starts a full one.
    let _ = buckets.insert(key, bucket, 0);
    taken
}
