//! Whether a frame is this host's to answer: addressed to the interface's own MAC and to
//! a destination address the kernel delivers locally. A wildcard listener matches any
//! destination address in `bpf_skc_lookup_tcp`, but the kernel routes before it looks up a
//! socket: a frame for a neighbour (a promiscuous port, a bridge member, a capture) is
//! PACKET_OTHERHOST (`eth_type_trans`) and never answered, and one to our MAC but another
//! host's address is forwarded or dropped (`ip_route_input_slow`, `ip6_route_input`).

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie},
    programs::XdpContext,
};
use handshake_common::config::{
    ASK_TRIE, Config, LOCAL_HOSTS_LEN, LOCAL_ROUTES, LocalHosts, ROUTE_LOCAL,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::{
    aligned::TrieKey,
    calls::{self, Call},
    headers::{Family, Segment, ptr_at, words},
};

/// The namespace's local routing table, kept by the loader (handshake-user's
/// `local_routes.rs`), and in `LOCAL_HOSTS` the same when it is only a few addresses.
/// `bpf_fib_lookup` cannot stand in for it, since it answers
/// FWD_DISABLED before any lookup on a host that does not forward, as servers do not.
#[map(name = "LOCAL_V4")]
static LOCAL_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(LOCAL_ROUTES, 0);
#[map(name = "LOCAL_V6")]
static LOCAL_V6: LpmTrie<[u32; 4], u8> = LpmTrie::with_max_entries(LOCAL_ROUTES, 0);
#[map(name = "LOCAL_HOSTS")]
static LOCAL_HOSTS: Array<LocalHosts> = Array::with_max_entries(1, 0);

#[inline(always)]
pub fn addressed_here<const L2: usize>(
    ctx: &XdpContext,
    segment: &Segment,
    config: &Config,
) -> bool {
    own_mac(ctx, config) && local_destination::<L2>(ctx, segment)
}

/// Whether the frame is addressed to this interface's own MAC.
#[inline(always)]
fn own_mac(ctx: &XdpContext, config: &Config) -> bool {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return false;
    };
    let (dst, mac) = (unsafe { (*eth).dst_addr }, config.mac);
    // Compared as a word and a half-word: an array comparison becomes a `bcmp` call.
    let word = |m: [u8; 6]| u32::from_ne_bytes([m[0], m[1], m[2], m[3]]);
    let half = |m: [u8; 6]| u16::from_ne_bytes([m[4], m[5]]);
    word(dst) == word(mac) && half(dst) == half(mac)
}

/// Whether the destination is local: one of `LOCAL_HOSTS`' addresses when the table is that
/// simple (no helper call: an array map's lookup is inlined), else whether the longest
/// local-table route to it is `type local` (one helper call, the trie lookup).
#[inline(always)]
fn local_destination<const L2: usize>(ctx: &XdpContext, segment: &Segment) -> bool {
    let Some(hosts) = LOCAL_HOSTS.get(0) else {
        return false;
    };
    let route = match segment.family {
        Family::Ipv4 => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, L2) else {
                return false;
            };
            let dst = unsafe { (*ip).dst_addr };
            if hosts.v4_len != ASK_TRIE {
                let dst = u32::from_ne_bytes(dst);
                return one_of(&hosts.v4, hosts.v4_len, |host| {
                    u32::from_ne_bytes(*host) == dst
                });
            }
            calls::count(Call::Helper, 1);
            LOCAL_V4.get(&TrieKey::new(32, unsafe { (*ip).dst_addr }).key)
        }
        Family::Ipv6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, L2) else {
                return false;
            };
            let dst = words(unsafe { &(*ip).dst_addr });
            if hosts.v6_len != ASK_TRIE {
                // Word by word: an array comparison becomes a `bcmp` call.
                return one_of(&hosts.v6, hosts.v6_len, |host| {
                    host[0] == dst[0] && host[1] == dst[1] && host[2] == dst[2] && host[3] == dst[3]
                });
            }
            calls::count(Call::Helper, 1);
            LOCAL_V6.get(&TrieKey::new(128, dst).key)
        }
    };
    route.is_some_and(|&route| route == ROUTE_LOCAL)
}

/// Whether one of the first `len` hosts matches; unrolled over the constant length.
#[inline(always)]
fn one_of<T>(hosts: &[T; LOCAL_HOSTS_LEN], len: u8, matches: impl Fn(&T) -> bool) -> bool {
    let mut found = false;
    for (index, host) in hosts.iter().enumerate() {
        found |= index < usize::from(len) && matches(host);
    }
    found
}
