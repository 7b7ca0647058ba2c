//! The operator's source lists: TCP to a protected port from a prefix on the allow list
//! goes to the kernel untouched (health checkers, load balancers), from one on the deny
//! list is dropped. One LPM trie per list and family, keyed by the source address.
//!
//! Asked only for segments to protected ports, and a list is looked up only when the
//! loader marked it non-empty in `Config::lists`: each lookup is a helper call.

use aya_ebpf::{
    macros::map,
    maps::{LpmTrie, lpm_trie::Key},
    programs::XdpContext,
};
use handshake_common::config::{
    Config, LIST_ALLOW_V4, LIST_ALLOW_V6, LIST_DENY_V4, LIST_DENY_V6, LIST_ENTRIES,
};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{
    aligned::TrieKey,
    calls::{self, Call},
    headers::{Family, Segment, ptr_at, words},
};

/// Values are the entry's prefix length, so that a source on both lists goes by the
/// longer (more specific) prefix, as a routing table would.
#[map(name = "ALLOW_V4")]
static ALLOW_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(LIST_ENTRIES, 0);
#[map(name = "ALLOW_V6")]
static ALLOW_V6: LpmTrie<[u32; 4], u8> = LpmTrie::with_max_entries(LIST_ENTRIES, 0);
#[map(name = "DENY_V4")]
static DENY_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(LIST_ENTRIES, 0);
#[map(name = "DENY_V6")]
static DENY_V6: LpmTrie<[u32; 4], u8> = LpmTrie::with_max_entries(LIST_ENTRIES, 0);

pub enum Listed {
    Allowed,
    Denied,
    Neither,
}

#[inline(always)]
pub fn listed<const L2: usize>(ctx: &XdpContext, segment: &Segment, config: &Config) -> Listed {
    let lists = config.lists;
    if lists == 0 {
        return Listed::Neither;
    }
    let (allowed, denied) = match segment.family {
        Family::Ipv4 => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, L2) else {
                return Listed::Neither;
            };
            let key = &TrieKey::new(32, unsafe { (*ip).src_addr }).key;
            (
                longest(&ALLOW_V4, key, lists & LIST_ALLOW_V4 != 0),
                longest(&DENY_V4, key, lists & LIST_DENY_V4 != 0),
            )
        }
        Family::Ipv6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, L2) else {
                return Listed::Neither;
            };
            let key = &TrieKey::new(128, words(unsafe { &(*ip).src_addr })).key;
            (
                longest(&ALLOW_V6, key, lists & LIST_ALLOW_V6 != 0),
                longest(&DENY_V6, key, lists & LIST_DENY_V6 != 0),
            )
        }
    };
    // The loader refuses one prefix on both lists, so equal lengths do not occur; were
    // they to, deny wins.
    match (allowed, denied) {
        (Some(allow), Some(deny)) if allow > deny => Listed::Allowed,
        (_, Some(_)) => Listed::Denied,
        (Some(_), None) => Listed::Allowed,
        (None, None) => Listed::Neither,
    }
}

/// The length of the longest prefix of `list` holding the key's address, if `non_empty`.
#[inline(always)]
fn longest<K>(list: &LpmTrie<K, u8>, key: &Key<K>, non_empty: bool) -> Option<u8> {
    if !non_empty {
        return None;
    }
    calls::count(Call::Helper, 1);
    list.get(key).copied()
}
