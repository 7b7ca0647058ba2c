//! Frames built byte by byte for the tests, with their own RFC 1071 checksum (written
//! again here on purpose: the program's checksum code is what is under test).

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const ETH_IPV4: [u8; 2] = [0x08, 0x00];
pub const ETH_IPV6: [u8; 2] = [0x86, 0xdd];

pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const PSH: u8 = 0x08;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// What Linux 6.x puts in a SYN: MSS 1460, SACK_PERM, TS (TSval 0x01020304), NOP, WS 7.
pub const LINUX_SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7,
];

pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from(chunk[0]) << 8
        };
        sum += u64::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP segment: header, options (padded by the caller to a multiple of 4) and payload.
#[derive(Clone)]
pub struct Tcp<'a> {
    pub source_port: u16,
    pub dest_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

impl Tcp<'_> {
    pub fn syn(source_port: u16, dest_port: u16, seq: u32, options: &[u8]) -> Tcp<'_> {
        Tcp {
            source_port,
            dest_port,
            seq,
            ack: 0,
            flags: SYN,
            window: 64240,
            options,
            payload: &[],
        }
    }

    /// The segment with its checksum over `pseudo` (the pseudo-header's bytes).
    fn bytes(&self, pseudo: &[u8]) -> Vec<u8> {
        let header_len = 20 + self.options.len();
        assert_eq!(header_len % 4, 0, "options must be padded to 32 bits");
        let mut segment = Vec::new();
        segment.extend_from_slice(&self.source_port.to_be_bytes());
        segment.extend_from_slice(&self.dest_port.to_be_bytes());
        segment.extend_from_slice(&self.seq.to_be_bytes());
        segment.extend_from_slice(&self.ack.to_be_bytes());
        segment.push(((header_len / 4) as u8) << 4);
        segment.push(self.flags);
        segment.extend_from_slice(&self.window.to_be_bytes());
        segment.extend_from_slice(&[0, 0, 0, 0]);
        segment.extend_from_slice(self.options);
        segment.extend_from_slice(self.payload);
        let mut summed = pseudo.to_vec();
        summed.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        summed.extend_from_slice(&segment);
        let sum = checksum(&summed);
        segment[16..18].copy_from_slice(&sum.to_be_bytes());
        segment
    }
}

/// Ethernet + IPv4 (+ `ip_options`) + TCP.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], ip_options: &[u8], tcp: &Tcp) -> Vec<u8> {
    ipv4_with(src, dst, ip_options, 0, 64, 0x4000, tcp)
}

/// The same with the header fields a SYN-ACK sets chosen by the caller.
pub fn ipv4_with(
    src: [u8; 4],
    dst: [u8; 4],
    ip_options: &[u8],
    id: u16,
    ttl: u8,
    frag: u16,
    tcp: &Tcp,
) -> Vec<u8> {
    let (src_mac, dst_mac) = macs(src[3]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6]);
    let segment = tcp.bytes(&pseudo);
    let header_len = 20 + ip_options.len();
    let mut ip = vec![0x40 | (header_len / 4) as u8, 0];
    ip.extend_from_slice(&((header_len + segment.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[ttl, 6, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(ip_options);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = ethernet(dst_mac, src_mac, ETH_IPV4);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&segment);
    frame
}

/// Ethernet + IPv6 + TCP.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], hop_limit: u8, tcp: &Tcp) -> Vec<u8> {
    let (src_mac, dst_mac) = macs(src[15]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6]);
    let segment = tcp.bytes(&pseudo);
    let mut frame = ethernet(dst_mac, src_mac, ETH_IPV6);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[6, hop_limit]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&segment);
    frame
}

pub fn ethernet(dst: [u8; 6], src: [u8; 6], ether_type: [u8; 2]) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ether_type);
    frame
}

/// Frames from the client (address ending in 2) go client MAC -> server MAC.
fn macs(last_src_byte: u8) -> ([u8; 6], [u8; 6]) {
    if last_src_byte == 2 {
        (CLIENT_MAC, SERVER_MAC)
    } else {
        (SERVER_MAC, CLIENT_MAC)
    }
}

/// An 802.1Q tag (TPID 0x8100) with VLAN id `vid`, or an 802.1ad S-tag (0x88a8).
pub fn c_tag(vid: u16) -> [u8; 4] {
    let [high, low] = vid.to_be_bytes();
    [0x81, 0x00, high, low]
}

pub fn s_tag(vid: u16) -> [u8; 4] {
    let [high, low] = vid.to_be_bytes();
    [0x88, 0xa8, high, low]
}

/// `frame` with `tags` inserted after the MAC addresses, outermost first.
pub fn tagged(frame: &[u8], tags: &[[u8; 4]]) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    for tag in tags {
        out.extend_from_slice(tag);
    }
    out.extend_from_slice(&frame[12..]);
    out
}

/// Where the IP header starts: after the MACs, any 802.1Q/802.1ad tags and the EtherType.
pub fn l2_len(frame: &[u8]) -> Option<usize> {
    let mut offset = 12;
    loop {
        let ether_type = frame.get(offset..offset + 2)?;
        if ether_type != [0x81, 0x00] && ether_type != [0x88, 0xa8] {
            return Some(offset + 2);
        }
        offset += 4;
    }
}

/// Recomputes the IPv4 header checksum and the TCP checksum of a frame changed in place,
/// as far as its own length fields say they reach and the frame holds them.
pub fn refresh_checksums(frame: &mut [u8]) {
    let Some(ip) = l2_len(frame) else { return };
    let Some(&version) = frame.get(ip) else {
        return;
    };
    let (tcp, tcp_len, pseudo) = match version >> 4 {
        4 if frame.len() >= ip + 20 => {
            let ihl = usize::from(version & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([frame[ip + 2], frame[ip + 3]]));
            if ihl >= 20 && frame.len() >= ip + ihl {
                frame[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
                let sum = checksum(&frame[ip..ip + ihl]);
                frame[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
            }
            (
                ip + ihl,
                total.wrapping_sub(ihl),
                frame[ip + 12..ip + 20].to_vec(),
            )
        }
        6 if frame.len() >= ip + 40 => {
            let payload = usize::from(u16::from_be_bytes([frame[ip + 4], frame[ip + 5]]));
            (ip + 40, payload, frame[ip + 8..ip + 40].to_vec())
        }
        _ => return,
    };
    if !(18..=0xffff).contains(&tcp_len) || frame.len() < tcp + tcp_len {
        return;
    }
    frame[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
    let mut summed = pseudo;
    summed.extend_from_slice(&[0, 6]);
    summed.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    summed.extend_from_slice(&frame[tcp..tcp + tcp_len]);
    let sum = checksum(&summed);
    frame[tcp + 16..tcp + 18].copy_from_slice(&sum.to_be_bytes());
}

/// `count` ACKs to `port` with random ports, sequence and acknowledgment numbers (a fixed
/// seed: the same frames every run), alternating IPv4 `v4` and IPv6 `v6` (source, destination).
pub fn forged_acks(
    count: u64,
    port: u16,
    v4: ([u8; 4], [u8; 4]),
    v6: ([u8; 16], [u8; 16]),
) -> Vec<Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let tcp = Tcp {
                source_port: 1024 + (state % 60000) as u16,
                dest_port: port,
                seq: (state >> 16) as u32,
                ack: (state >> 32) as u32,
                flags: ACK,
                window: 502,
                options: &[],
                payload: &[],
            };
            if i % 2 == 0 {
                ipv4(v4.0, v4.1, &[], &tcp)
            } else {
                ipv6(v6.0, v6.1, 64, &tcp)
            }
        })
        .collect()
}
