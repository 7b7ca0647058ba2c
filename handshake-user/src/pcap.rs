//! The classic pcap file format (what `tcpdump -w` writes and every reader reads), written
//! by hand: a 24-byte file header, then per frame a 16-byte record header and the frame's
//! bytes. Forty lines here cost less than a dependency, and the format has not changed
//! since 1998. See https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html.

use std::io::{self, Write};

/// The magic number of a file whose record timestamps are in nanoseconds (written in this
/// host's byte order, which is how readers tell the order: little-endian here).
const MAGIC_NANOSECONDS: u32 = 0xa1b2_3c4d;
const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;
/// LINKTYPE_ETHERNET: every frame starts with its Ethernet header.
const LINKTYPE_ETHERNET: u32 = 1;

pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Writes the file header: frames are cut at `snaplen` bytes.
    pub fn new(mut out: W, snaplen: u32) -> io::Result<Self> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&MAGIC_NANOSECONDS.to_ne_bytes());
        header.extend_from_slice(&VERSION_MAJOR.to_ne_bytes());
        header.extend_from_slice(&VERSION_MINOR.to_ne_bytes());
        header.extend_from_slice(&0i32.to_ne_bytes()); // thiszone: timestamps are UTC
        header.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs: always 0
        header.extend_from_slice(&snaplen.to_ne_bytes());
        header.extend_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
        out.write_all(&header)?;
        Ok(Self { out })
    }

    /// One frame: `data` its first bytes, `len` its length on the wire, `unix_ns` when
    /// it was seen (nanoseconds since 1970, UTC).
    pub fn frame(&mut self, unix_ns: u64, data: &[u8], len: u32) -> io::Result<()> {
        let mut record = Vec::with_capacity(16 + data.len());
        record.extend_from_slice(&((unix_ns / 1_000_000_000) as u32).to_ne_bytes());
        record.extend_from_slice(&((unix_ns % 1_000_000_000) as u32).to_ne_bytes());
        record.extend_from_slice(&(data.len() as u32).to_ne_bytes()); // bytes in the file
        record.extend_from_slice(&len.to_ne_bytes()); // bytes on the wire
        record.extend_from_slice(data);
        self.out.write_all(&record)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_24_and_16_bytes_in_host_order() {
        let mut writer = Writer::new(Vec::new(), 128).unwrap();
        writer
            .frame(1_700_000_000_123_456_789, &[1, 2, 3], 60)
            .unwrap();
        let bytes = writer.out;
        assert_eq!(bytes.len(), 24 + 16 + 3);
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&bytes[4..8], &[2, 0, 4, 0]);
        assert_eq!(&bytes[16..20], &128u32.to_le_bytes());
        assert_eq!(&bytes[20..24], &1u32.to_le_bytes());
        assert_eq!(&bytes[24..28], &1_700_000_000u32.to_le_bytes());
        assert_eq!(&bytes[28..32], &123_456_789u32.to_le_bytes());
        assert_eq!(&bytes[32..36], &3u32.to_le_bytes());
        assert_eq!(&bytes[36..40], &60u32.to_le_bytes());
        assert_eq!(&bytes[40..], &[1, 2, 3]);
    }
}
