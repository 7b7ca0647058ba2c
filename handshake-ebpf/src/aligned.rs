//! Values on the stack, placed for the verifier.
//!
//! The program is built with misaligned loads and stores allowed (handshake-user's
//! build/xdp.rs), so that LLVM reads and writes a packet's 4- and 8-byte fields whole
//! rather than a byte at a time. It then merges stores on the stack too, where the
//! verifier demands every access be aligned to its size (`check_ptr_alignment`: stack
//! slots are tracked in 8-byte units). A value whose own alignment is 4 (a socket tuple,
//! an LPM trie key) is therefore placed here, at an 8-byte boundary.

use aya_ebpf::maps::lpm_trie::Key;

/// `T` at an 8-byte boundary of the stack.
#[repr(C, align(8))]
pub struct Aligned<T>(pub T);

/// An LPM trie key: a 4-byte prefix length and then the address. Placed at 4 past an
/// 8-byte boundary, so that the address's halves are aligned 8-byte stores.
#[repr(C, align(8))]
pub struct TrieKey<K> {
    _before: u32,
    pub key: Key<K>,
}

impl<K> TrieKey<K> {
    #[inline(always)]
    pub fn new(prefix_len: u32, data: K) -> Self {
        Self {
            _before: 0,
            key: Key::new(prefix_len, data),
        }
    }
}
