//! The Internet checksum (RFC 1071) over headers the XDP program builds on its stack.
//!
//! The sums are kept unfolded in a `u32` and folded once at the end; 20 words of a TCP
//! header plus a pseudo-header cannot overflow it.

/// Adds `bytes` as big-endian 16-bit words (a trailing odd byte is padded with zero).
#[inline(always)]
pub fn sum_words(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut i = 0;
    while i + 1 < bytes.len() {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    if i < bytes.len() {
        sum += u32::from(bytes[i]) << 8;
    }
    sum
}

/// Folds the carries back in and returns the one's complement, ready for the header.
#[inline(always)]
pub fn finish(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The IPv4 header checksum of `header` (its checksum field must be zero).
#[inline(always)]
pub fn ipv4_header(header: &[u8]) -> u16 {
    finish(sum_words(0, header))
}

/// The TCP checksum: the pseudo-header (RFC 9293 3.1 for IPv4, RFC 8200 8.1 for IPv6:
/// both addresses, the protocol, the segment length) followed by the segment itself,
/// whose checksum field must be zero.
#[inline(always)]
pub fn tcp(src: &[u8], dst: &[u8], segment: &[u8]) -> u16 {
    let mut sum = sum_words(0, src);
    sum = sum_words(sum, dst);
    sum += u32::from(crate::tcp::IPPROTO_TCP);
    sum += segment.len() as u32;
    finish(sum_words(sum, segment))
}

/// True when `bytes`, checksum field included, sum to the all-ones word.
pub fn verifies(initial: u32, bytes: &[u8]) -> bool {
    finish(sum_words(initial, bytes)) == 0
}

/// The XDP program verifies a SYN's checksums by loading the packet this many bytes at a
/// time (one `bpf_loop` step each) and adding them with [`add_wide`].
pub const CHUNK_LEN: usize = 64;

/// Adds `bytes` to an unfolded sum as native-endian 32-bit words, a partial last word
/// padded with zeros.
///
/// RFC 1071 2(B) and 2(C): the one's complement sum may be taken over wider words and in
/// either byte order, as long as it is folded at the end; a sum over data that carries its
/// own checksum folds to all ones, which reads the same in both byte orders. So the
/// program needs no byte swaps to *verify*. 2^32 words cannot overflow the `u64`.
#[inline(always)]
pub fn add_wide(mut sum: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i + 4 <= bytes.len() {
        sum += u64::from(u32::from_ne_bytes([
            bytes[i],
            bytes[i + 1],
            bytes[i + 2],
            bytes[i + 3],
        ]));
        i += 4;
    }
    let mut last = [0u8; 4];
    let mut j = 0;
    while i + j < bytes.len() {
        last[j] = bytes[i + j];
        j += 1;
    }
    sum + u64::from(u32::from_ne_bytes(last))
}

/// Folds a sum from [`add_wide`] to 16 bits with end-around carries (not complemented).
#[inline(always)]
pub fn fold_wide(sum: u64) -> u16 {
    // Four 16-bit parts sum to less than 2^18; two more folds leave at most 0xffff.
    let mut folded = (sum & 0xffff) + ((sum >> 16) & 0xffff) + ((sum >> 32) & 0xffff) + (sum >> 48);
    folded = (folded & 0xffff) + (folded >> 16);
    folded = (folded & 0xffff) + (folded >> 16);
    folded as u16
}

/// True when a sum from [`add_wide`] over data, checksum field included, verifies.
#[inline(always)]
pub fn wide_verifies(sum: u64) -> bool {
    fold_wide(sum) == 0xffff
}

/// The TCP pseudo-header's protocol and length words (RFC 9293 3.1; for IPv6, RFC 8200
/// 8.1 puts the same values in wider fields, which sum the same), to add after the
/// addresses.
#[inline(always)]
pub fn pseudo_tail(segment_len: u16) -> [u8; 4] {
    let [high, low] = segment_len.to_be_bytes();
    [0, crate::tcp::IPPROTO_TCP, high, low]
}

/// The TCP checksum field's two bytes for `segment`, whose first `segment_len` bytes are
/// the segment (checksum field zero) and the rest zero, under the pseudo-header whose
/// addresses sum to `addresses` (an [`add_wide`] sum of source and destination: the same
/// for a segment and its answer, which swaps them).
///
/// Summed as native 32-bit words and stored back in native order (RFC 1071 2(B)): the
/// same bytes as [`tcp`] gives big-endian, in a quarter of the additions. The XDP program
/// builds the SYN-ACK with this; the per-byte version spilled registers past the
/// verifier's stack limit.
#[inline(always)]
pub fn tcp_field<const N: usize>(addresses: u64, segment_len: usize, segment: &[u8; N]) -> [u8; 2] {
    let sum = add_wide(addresses, &pseudo_tail(segment_len as u16));
    (!fold_wide(add_wide(sum, segment))).to_ne_bytes()
}

/// The IPv4 header checksum field's two bytes, native order, for a 20-byte header whose
/// first three words are `words` (checksum field zero) and whose addresses sum to
/// `addresses` (an [`add_wide`] sum).
#[inline(always)]
pub fn ipv4_header_field(addresses: u64, words: [[u8; 4]; 3]) -> [u8; 2] {
    let sum = add_wide(
        add_wide(add_wide(addresses, &words[0]), &words[1]),
        &words[2],
    );
    (!fold_wide(sum)).to_ne_bytes()
}

/// Where a sum over packet bytes stands: the XDP program keeps it between `bpf_loop` steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summing {
    pub sum: u64,
    /// A load failed (the range is not inside the packet): the sum means nothing.
    pub failed: bool,
}

/// The chunks a `len`-byte range is summed in.
pub const fn chunks(len: usize) -> usize {
    len.div_ceil(CHUNK_LEN)
}

/// Adds chunk `index` of a `len`-byte range: `CHUNK_LEN` bytes from `index * CHUNK_LEN`,
/// fewer for the last one. `load(offset, chunk, n)` copies `n` bytes (1..=CHUNK_LEN) into
/// the front of a zeroed chunk; the zeros after a short last chunk add nothing, and every
/// chunk starts at an even offset, so each byte keeps its place in its 16-bit word.
///
/// The chunk is found from `index` alone, not from a running offset: the verifier re-walks
/// a `bpf_loop` callback until the state it carries stops changing, and an offset would
/// change on every step. Returns whether the sum goes on.
#[inline(always)]
pub fn sum_chunk(
    state: &mut Summing,
    index: usize,
    len: usize,
    load: impl Fn(usize, &mut [u8; CHUNK_LEN], usize) -> bool,
) -> bool {
    let offset = index * CHUNK_LEN;
    if offset >= len || state.failed {
        return false;
    }
    let mut chunk = [0u8; CHUNK_LEN];
    if !load(offset, &mut chunk, (len - offset).min(CHUNK_LEN)) {
        state.failed = true;
        return false;
    }
    state.sum = add_wide(state.sum, &chunk);
    true
}

/// Sums a slice the way the XDP program sums packet bytes (the host's view, and the tests').
pub fn sum_range(initial: u64, bytes: &[u8]) -> u64 {
    let mut state = Summing {
        sum: initial,
        failed: false,
    };
    let load = |offset: usize, chunk: &mut [u8; CHUNK_LEN], n: usize| match bytes
        .get(offset..offset + n)
    {
        Some(piece) => {
            chunk[..n].copy_from_slice(piece);
            true
        }
        None => false,
    };
    for index in 0..chunks(bytes.len()) {
        sum_chunk(&mut state, index, bytes.len(), load);
    }
    assert!(!state.failed, "a slice's own bytes always load");
    state.sum
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 4.1 worked example: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum_words(0, &data)), !0xddf2);
    }

    // A real IPv4 header (from a capture) whose checksum is 0xb861.
    #[test]
    fn ipv4_header_checksum() {
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header(&header), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verifies(0, &header));
        // The same from its first three words and its addresses' sum.
        let words = [
            [0x45, 0x00, 0x00, 0x73],
            [0x00, 0x00, 0x40, 0x00],
            [0x40, 0x11, 0x00, 0x00],
        ];
        let addresses = add_wide(0, &header[12..20]);
        assert_eq!(ipv4_header_field(addresses, words), 0xb861u16.to_be_bytes());
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum_words(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn tcp_checksum_verifies_with_its_pseudo_header() {
        let src = [198, 18, 0, 1];
        let dst = [198, 18, 0, 2];
        let mut segment = [0u8; 24];
        segment[0..2].copy_from_slice(&80u16.to_be_bytes());
        segment[12] = 6 << 4;
        segment[13] = 0x12;
        segment[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
        let sum = tcp(&src, &dst, &segment);
        segment[16..18].copy_from_slice(&sum.to_be_bytes());
        let pseudo = sum_words(sum_words(0, &src), &dst) + 6 + 24;
        assert!(verifies(pseudo, &segment));
        let wide = add_wide(add_wide(add_wide(0, &src), &dst), &pseudo_tail(24));
        assert!(wide_verifies(add_wide(wide, &segment)));
        segment[23] ^= 1;
        assert!(!wide_verifies(add_wide(wide, &segment)));
    }

    #[test]
    fn tcp_field_matches_the_big_endian_checksum() {
        let mut segment = [0u8; 40];
        for (i, byte) in segment[..36].iter_mut().enumerate() {
            *byte = (i * 29 + 3) as u8;
        }
        segment[16..18].copy_from_slice(&[0, 0]);
        let (src, dst) = ([198, 18, 0, 1], [198, 18, 0, 2]);
        assert_eq!(
            tcp_field(add_wide(add_wide(0, &src), &dst), 36, &segment),
            tcp(&src, &dst, &segment[..36]).to_be_bytes()
        );
    }

    #[test]
    fn wide_sum_of_odd_lengths_pads_with_zero() {
        let data = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(
            fold_wide(add_wide(0, &data)).swap_bytes(),
            !finish(sum_words(0, &data))
        );
    }

    #[test]
    fn range_sums_agree_with_word_sums_for_every_length() {
        let data: [u8; 200] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for len in 0..data.len() {
            assert_eq!(
                fold_wide(sum_range(0, &data[..len])).swap_bytes(),
                !finish(sum_words(0, &data[..len])),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn fold_wide_carries_around() {
        assert_eq!(fold_wide(u64::MAX), 0xffff);
        assert_eq!(fold_wide(0x1_0000), 1);
        assert_eq!(fold_wide(0), 0);
    }
}
