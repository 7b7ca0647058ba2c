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
    }
}
