//! IPv4 and IPv6 prefixes as operators type them for the allow and deny lists:
//! `203.0.113.0/24`, `2001:db8::/32`, or a bare address for one host. Like `ip route`, a
//! prefix with host bits set (`10.0.0.1/8`) is refused rather than silently cut.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use anyhow::anyhow;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub address: IpAddr,
    pub len: u8,
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.len)
    }
}

impl Prefix {
    /// Whether `address` lies in this prefix (of its family).
    pub fn contains(&self, address: IpAddr) -> bool {
        address.is_ipv4() == self.address.is_ipv4() && network(address, self.len) == self.address
    }
}

/// The address with every bit past the first `len` cleared.
fn network(address: IpAddr, len: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

impl FromStr for Prefix {
    type Err = String;

    /// Why `text` is not a prefix: the message names the value and the fix.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let not_a_prefix = || {
            format!(
                "{text:?} is not an IPv4 or IPv6 prefix; give ADDRESS/LENGTH like 203.0.113.0/24 or 2001:db8::/32, or one address"
            )
        };
        let (address, len) = match text.split_once('/') {
            Some((address, len)) => (address, Some(len)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| not_a_prefix())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
        let len = match len {
            None => max,
            Some(len) => match len.parse::<u8>() {
                Ok(len) if len <= max => len,
                Ok(_) | Err(_) if len.bytes().all(|b| b.is_ascii_digit()) && !len.is_empty() => {
                    return Err(format!(
                        "{text}: prefix length {len} is over {max}, the length of an {family} address; give 0 to {max}"
                    ));
                }
                _ => return Err(not_a_prefix()),
            },
        };
        let masked = network(address, len);
        if masked != address {
            return Err(format!(
                "{text} has host bits set past /{len}; give the network, {masked}/{len}, or the host, {address}/{max}"
            ));
        }
        Ok(Prefix { address, len })
    }
}

/// Every prefix of `items` (each may hold several, separated by commas), or the first
/// one wrong, named: nothing is applied unless all are good.
pub fn parse_all<'a>(items: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Vec<Prefix>> {
    let mut prefixes = Vec::new();
    for item in items {
        for text in item
            .split(',')
            .map(str::trim)
            .filter(|text| !text.is_empty())
        {
            prefixes.push(text.parse::<Prefix>().map_err(|reason| anyhow!(reason))?);
        }
    }
    Ok(prefixes)
}

/// The prefixes of a file, one per line; `#` starts a comment, blank lines are skipped.
/// An error names the file and the line.
pub fn parse_file(path: &std::path::Path) -> anyhow::Result<Vec<Prefix>> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow!("reading {} failed: {error}", path.display()))?;
    let mut prefixes = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let prefix = line
            .parse::<Prefix>()
            .map_err(|reason| anyhow!("{}, line {}: {reason}", path.display(), number + 1))?;
        prefixes.push(prefix);
    }
    Ok(prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        text.parse::<Prefix>().unwrap_err()
    }

    #[test]
    fn prefixes_and_addresses_parse() {
        let prefix = |text: &str| text.parse::<Prefix>().unwrap().to_string();
        assert_eq!(prefix("203.0.113.0/24"), "203.0.113.0/24");
        assert_eq!(prefix("2001:db8::/32"), "2001:db8::/32");
        assert_eq!(prefix("198.18.0.2"), "198.18.0.2/32");
        assert_eq!(prefix("2001:2::2"), "2001:2::2/128");
        assert_eq!(prefix("0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(prefix("::/0"), "::/0");
        assert_eq!(prefix(" 10.0.0.0/8 "), "10.0.0.0/8");
    }

    #[test]
    fn errors_name_the_value_and_the_fix() {
        assert_eq!(
            error("203.0.113.0/33"),
            "203.0.113.0/33: prefix length 33 is over 32, the length of an IPv4 address; give 0 to 32"
        );
        assert_eq!(
            error("2001:db8::/129"),
            "2001:db8::/129: prefix length 129 is over 128, the length of an IPv6 address; give 0 to 128"
        );
        assert_eq!(
            error("foo"),
            "\"foo\" is not an IPv4 or IPv6 prefix; give ADDRESS/LENGTH like 203.0.113.0/24 or 2001:db8::/32, or one address"
        );
        assert_eq!(
            error("10.0.0.0/x"),
            "\"10.0.0.0/x\" is not an IPv4 or IPv6 prefix; give ADDRESS/LENGTH like 203.0.113.0/24 or 2001:db8::/32, or one address"
        );
        assert_eq!(
            error("10.0.0.1/8"),
            "10.0.0.1/8 has host bits set past /8; give the network, 10.0.0.0/8, or the host, 10.0.0.1/32"
        );
        assert_eq!(
            error("2001:db8::1/32"),
            "2001:db8::1/32 has host bits set past /32; give the network, 2001:db8::/32, or the host, 2001:db8::1/128"
        );
        assert_eq!(
            parse_all(["198.18.0.0/24,198.18.1.0/24", "2001:2::/48"])
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            parse_all(["198.18.0.0/24", "198.18.1.1/24"])
                .unwrap_err()
                .to_string(),
            "198.18.1.1/24 has host bits set past /24; give the network, 198.18.1.0/24, or the host, 198.18.1.1/32"
        );
    }
}
