//! The MSS our SYN-ACK advertises: the server's own, as the kernel would advertise it
//! (`tcp_mss_clamp(dst_metric_advmss)`): the MTU less the IP and TCP headers.

use anyhow::bail;

/// IPv4 + TCP headers, IPv6 + TCP headers (RFC 9293 3.7.1, RFC 8200).
const IPV4_OVERHEAD: u32 = 40;
const IPV6_OVERHEAD: u32 = 60;
/// RFC 9293 3.7.1: every host accepts 536; a smaller MSS only slows the connection.
const MIN_MSS: u32 = 536;

/// (IPv4 MSS, IPv6 MSS) for an interface of `mtu`, or for `--mss` when given: that is the
/// IPv4 value and IPv6 gets 20 bytes less for its larger header.
pub fn choose(iface: &str, mtu: u32, requested: Option<u32>) -> anyhow::Result<(u16, u16)> {
    let largest = mtu.saturating_sub(IPV4_OVERHEAD);
    let mss = match requested {
        None => largest,
        Some(mss) if mss < MIN_MSS => bail!(
            "--mss {mss} is below {MIN_MSS}, the MSS every TCP must accept (RFC 9293 3.7.1); give 536 or more"
        ),
        Some(mss) if mss > largest => bail!(
            "--mss {mss} does not fit {iface}'s MTU of {mtu} (at most {largest}); give a smaller --mss or raise the MTU"
        ),
        Some(mss) => mss,
    };
    if mss < MIN_MSS {
        bail!("{iface}'s MTU of {mtu} leaves an MSS of {mss}, below {MIN_MSS}; raise the MTU");
    }
    let ipv6 = mss - (IPV6_OVERHEAD - IPV4_OVERHEAD);
    Ok((mss as u16, ipv6 as u16))
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn default_follows_the_mtu() {
        assert_eq!(choose("eth0", 1500, None).unwrap(), (1460, 1440));
        assert_eq!(choose("eth0", 9000, None).unwrap(), (8960, 8940));
        assert_eq!(choose("eth0", 1500, Some(1400)).unwrap(), (1400, 1380));
    }

    #[test]
    fn errors_name_the_value() {
        assert_eq!(
            choose("eth0", 1500, Some(1461)).unwrap_err().to_string(),
            "--mss 1461 does not fit eth0's MTU of 1500 (at most 1460); give a smaller --mss or raise the MTU"
        );
        assert_eq!(
            choose("eth0", 1500, Some(100)).unwrap_err().to_string(),
            "--mss 100 is below 536, the MSS every TCP must accept (RFC 9293 3.7.1); give 536 or more"
        );
    }
}
