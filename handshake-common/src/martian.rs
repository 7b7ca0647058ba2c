//! Addresses a SYN-ACK must never go to: the kernel discards SYNs from or to them before a
//! listener sees them, so answering at XDP would reflect traffic the kernel never would.

/// IPv4 (net/ipv4/route.c, `ip_route_input_slow`): a multicast, limited-broadcast, zero-net
/// or loopback source is `martian_source`; a zero-net or loopback destination is
/// `martian_destination`; `tcp_v4_conn_request` drops SYNs routed as broadcast or
/// multicast. A source equal to the destination is one of our own addresses
/// (`fib_validate_source` refuses it): the LAND attack.
pub fn ipv4(src: [u8; 4], dst: [u8; 4]) -> bool {
    let never_a_source =
        |a: [u8; 4]| a[0] == 0 || a[0] == 127 || (a[0] & 0xf0) == 0xe0 || a == [255; 4];
    never_a_source(src) || never_a_source(dst) || src == dst
}

/// IPv6 (net/ipv6/ip6_input.c, `ip6_rcv_core`, and `tcp_v6_conn_request`): multicast is
/// never a source (RFC 4291 2.7) and a SYN to one is dropped (`ipv6_unicast_destination`);
/// loopback on the wire is dropped; an unspecified or IPv4-mapped source is refused.
pub fn ipv6(src: [u8; 16], dst: [u8; 16]) -> bool {
    const UNSPECIFIED: [u8; 16] = [0; 16];
    const LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let special = |a: [u8; 16]| a[0] == 0xff || a == UNSPECIFIED || a == LOOPBACK;
    let v4_mapped = src[..10] == [0; 10] && src[10] == 0xff && src[11] == 0xff;
    special(src) || special(dst) || v4_mapped || src == dst
}

/// A frame whose destination MAC is a group address (multicast or broadcast: the I/G bit,
/// IEEE 802 9.2) reaches TCP as `PACKET_MULTICAST`/`PACKET_BROADCAST`, which `tcp_v4_rcv`
/// and `tcp_v6_rcv` discard.
pub fn group_mac(dst: [u8; 6]) -> bool {
    dst[0] & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_sources_and_destinations() {
        let host = [198, 18, 0, 1];
        assert!(!ipv4([198, 18, 0, 2], host));
        for bad in [[0, 0, 0, 0], [0, 1, 2, 3], [127, 0, 0, 1], [224, 0, 0, 1]] {
            assert!(ipv4(bad, host), "{bad:?} as source");
            assert!(ipv4(host, bad), "{bad:?} as destination");
        }
        assert!(ipv4([239, 255, 255, 255], host));
        assert!(ipv4([255, 255, 255, 255], host));
        assert!(ipv4(host, host));
        // Class E other than 255.255.255.255 is routable as far as the kernel is concerned.
        assert!(!ipv4([240, 0, 0, 1], host));
    }

    #[test]
    fn ipv6_sources_and_destinations() {
        let host = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let client = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        assert!(!ipv6(client, host));
        assert!(ipv6(host, host));
        let mut multicast = host;
        multicast[0] = 0xff;
        assert!(ipv6(multicast, host) && ipv6(client, multicast));
        let mut mapped = [0u8; 16];
        mapped[10..].copy_from_slice(&[0xff, 0xff, 198, 18, 0, 2]);
        assert!(ipv6(mapped, host));
        assert!(ipv6([0; 16], host));
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        assert!(ipv6(loopback, host) && ipv6(client, loopback));
    }

    #[test]
    fn group_macs() {
        assert!(group_mac([0xff; 6]));
        assert!(group_mac([0x01, 0, 0x5e, 0, 0, 1]));
        assert!(!group_mac([0x02, 0, 0, 0, 0, 1]));
    }
}
