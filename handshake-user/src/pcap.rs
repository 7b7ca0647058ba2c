//! The samples as a classic pcap file (what `tcpdump -w` writes and every reader reads),
//! through the pcap-file crate: nanosecond timestamps, Ethernet frames cut at the
//! sample's length.

use std::{io::Write, time::Duration};

use pcap_file::{
    DataLink, Endianness, TsResolution,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};

pub struct Writer<W: Write> {
    out: PcapWriter<W>,
}

impl<W: Write> Writer<W> {
    /// Writes the file header: frames are cut at `snaplen` bytes.
    pub fn new(out: W, snaplen: u32) -> anyhow::Result<Self> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
        };
        Ok(Self {
            out: PcapWriter::with_header(out, header)?,
        })
    }

    /// One frame: `data` its first bytes, `len` its length on the wire, `unix_ns` when
    /// it was seen (nanoseconds since 1970, UTC).
    pub fn frame(&mut self, unix_ns: u64, data: &[u8], len: u32) -> anyhow::Result<()> {
        let packet = PcapPacket::new(Duration::from_nanos(unix_ns), len, data);
        self.out.write_packet(&packet)?;
        Ok(())
    }

    /// Flushes what is written and gives the file back.
    pub fn finish(self) -> anyhow::Result<W> {
        let mut out = self.out.into_writer();
        out.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout every reader expects (draft-ietf-opsawg-pcap): a 24-byte file header,
    /// then per frame a 16-byte record header and the bytes, in the writer's byte order.
    #[test]
    fn headers_are_24_and_16_bytes_in_host_order() {
        let mut writer = Writer::new(Vec::new(), 128).unwrap();
        writer
            .frame(1_700_000_000_123_456_789, &[1, 2, 3], 60)
            .unwrap();
        let bytes = writer.finish().unwrap();
        assert_eq!(bytes.len(), 24 + 16 + 3);
        assert_eq!(&bytes[..4], &0xa1b2_3c4du32.to_ne_bytes());
        assert_eq!(&bytes[4..8], &[2, 0, 4, 0]);
        assert_eq!(&bytes[16..20], &128u32.to_ne_bytes());
        assert_eq!(&bytes[20..24], &1u32.to_ne_bytes());
        assert_eq!(&bytes[24..28], &1_700_000_000u32.to_ne_bytes());
        assert_eq!(&bytes[28..32], &123_456_789u32.to_ne_bytes());
        assert_eq!(&bytes[32..36], &3u32.to_ne_bytes());
        assert_eq!(&bytes[36..40], &60u32.to_ne_bytes());
        assert_eq!(&bytes[40..], &[1, 2, 3]);
    }
}
