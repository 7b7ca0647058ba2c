//! Refusing ports that netfilter DNATs elsewhere (Docker's published ports: docker-proxy
//! listens on 0.0.0.0:P while a DNAT rule sends P to a container). The XDP program runs
//! before netfilter: it would find docker-proxy's listener and answer the SYN from this
//! host, then conntrack DNATs the client's ACK to the container, which never saw a SYN and
//! answers RST. Such a port must stay with the kernel, so `attach`, `run` and `ports add`
//! refuse it, naming the rule.

use std::{io, mem::size_of, process::Command};

use anyhow::bail;

use super::nat_rules::{self, Rewrite};
use crate::ports;

/// Refuses the first of `ports` that a NAT prerouting rule rewrites. When the rules
/// cannot be read, warns once and lets the ports through: the check is a courtesy the
/// host's tools may not allow, not a condition of protection.
pub fn refuse_rewritten_ports(ports: &[u16]) -> anyhow::Result<()> {
    let list = ports::join(ports);
    if let Some(families) = legacy_nat_tables() {
        log::warn!(
            "the legacy iptables nat table is loaded ({families}), whose rules nft cannot show: check that `iptables-legacy -t nat -S` DNATs none of ports {list}, or handshake would answer SYNs that belong elsewhere"
        );
    }
    match read_rewrites() {
        Ok(rewrites) => refuse(ports, &rewrites),
        Err(reason) => {
            log::warn!(
                "could not check whether netfilter DNATs ports {list}: {reason}; a port DNATed elsewhere (e.g. Docker's published ports) must not be protected"
            );
            Ok(())
        }
    }
}

/// The error for the first port a rule rewrites, naming the rule and the other such ports.
pub fn refuse(ports: &[u16], rewrites: &[Rewrite]) -> anyhow::Result<()> {
    let rewritten: Vec<(u16, &Rewrite)> = ports
        .iter()
        .filter_map(|&port| {
            let rule = rewrites.iter().find(|rule| rule.ports.contains(port))?;
            Some((port, rule))
        })
        .collect();
    let Some(&(port, rule)) = rewritten.first() else {
        return Ok(());
    };
    let all: Vec<u16> = rewritten.iter().map(|&(port, _)| port).collect();
    let also = match &all[1..] {
        [] => String::new(),
        [other] => format!(", and so is port {other}"),
        others => format!(", and so are ports {}", ports::join(others)),
    };
    bail!(
        "port {port} is rewritten by netfilter's {}{also}: handshake would answer its SYNs from this host and the ACK, DNATed elsewhere, would be reset; leave {} out of the ports to protect, or protect the service where it runs (`nft -a list chain {} {} {}` shows the rule)",
        rule.describe(),
        ports::join(&all),
        rule.family,
        rule.table,
        rule.chain
    )
}

/// The NAT rewrites of this thread's network namespace, or why they could not be read.
fn read_rewrites() -> Result<Vec<Rewrite>, String> {
    let output = match Command::new("nft").args(["-j", "list", "ruleset"]).output() {
        Ok(output) => output,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // Without nft, the kernel can still say that no nftables table exists (then
            // no iptables-nft or nft rule does either).
            return match nftables_has_tables() {
                Ok(false) => Ok(Vec::new()),
                Ok(true) => Err(
                    "nftables tables exist but `nft` is not installed to read them (Debian: apt install nftables)".to_owned(),
                ),
                Err(error) => Err(format!(
                    "`nft` is not installed (Debian: apt install nftables) and asking the kernel for nftables tables failed: {error}"
                )),
            };
        }
        Err(error) => return Err(format!("running `nft` failed: {error}")),
    };
    if !output.status.success() {
        return Err(format!(
            "`nft -j list ruleset` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|error| error.to_string())
        .and_then(|document| nat_rules::rewrites(&document))
        .map_err(|reason| {
            format!("`nft -j list ruleset` printed JSON handshake cannot read ({reason})")
        })
}

/// "ip, ip6" when x_tables' legacy nat table exists in this thread's namespace
/// (/proc/net/ip_tables_names lists the tables iptables-legacy registered; iptables-nft
/// registers none there).
fn legacy_nat_tables() -> Option<String> {
    let families: Vec<&str> = [("ip", "ip_tables_names"), ("ip6", "ip6_tables_names")]
        .into_iter()
        .filter(|(_, file)| {
            // thread-self: /proc/net follows the process's first thread, not a thread
            // that entered another namespace.
            std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
                .is_ok_and(|names| names.lines().any(|name| name == "nat"))
        })
        .map(|(family, _)| family)
        .collect();
    (!families.is_empty()).then(|| families.join(", "))
}

const NETLINK_NETFILTER: i32 = 12;
/// NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETTABLE, and the NEWTABLE the dump answers with
/// (include/uapi/linux/netfilter/nfnetlink.h, nf_tables.h).
const NFT_MSG_GETTABLE: u16 = 10 << 8 | 1;
const NFT_MSG_NEWTABLE: u16 = 10 << 8;
/// NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6: the families a NAT rule for IP lives in.
const IP_FAMILIES: [u8; 3] = [1, 2, 10];

/// Whether an nftables table of an IP family exists in this thread's namespace: one
/// NFT_MSG_GETTABLE dump over nfnetlink, as `nft list tables` sends.
fn nftables_has_tables() -> io::Result<bool> {
    let socket = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if socket < 0 {
        let error = io::Error::last_os_error();
        // No nfnetlink in this kernel: no nftables either.
        return match error.raw_os_error() {
            Some(libc::EPROTONOSUPPORT) => Ok(false),
            _ => Err(error),
        };
    }
    let result = dump_tables(socket);
    unsafe { libc::close(socket) };
    result
}

fn dump_tables(socket: i32) -> io::Result<bool> {
    // nlmsghdr, then nfgenmsg { family AF_UNSPEC, version NFNETLINK_V0, res_id 0 }.
    let header = libc::nlmsghdr {
        nlmsg_len: (size_of::<libc::nlmsghdr>() + 4) as u32,
        nlmsg_type: NFT_MSG_GETTABLE,
        nlmsg_flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
        nlmsg_seq: 1,
        nlmsg_pid: 0,
    };
    let mut request = [0u8; size_of::<libc::nlmsghdr>() + 4];
    request[..size_of::<libc::nlmsghdr>()].copy_from_slice(unsafe {
        std::slice::from_raw_parts((&raw const header).cast(), size_of::<libc::nlmsghdr>())
    });
    let sent = unsafe { libc::send(socket, request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = false;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let received = unsafe { libc::recv(socket, buffer.as_mut_ptr().cast(), buffer.len(), 0) };
        if received < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut rest = &buffer[..received as usize];
        while rest.len() >= size_of::<libc::nlmsghdr>() {
            let length = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
            if length < size_of::<libc::nlmsghdr>() || length > rest.len() {
                return Err(io::Error::other("a truncated netlink message"));
            }
            match kind {
                k if k == libc::NLMSG_DONE as u16 => return Ok(found),
                k if k == libc::NLMSG_ERROR as u16 => {
                    let code = i32::from_ne_bytes(rest[16..20].try_into().expect("4 bytes"));
                    return Err(io::Error::from_raw_os_error(-code));
                }
                NFT_MSG_NEWTABLE => found |= IP_FAMILIES.contains(&rest[16]),
                _ => {}
            }
            rest = &rest[length.next_multiple_of(4).min(rest.len())..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refuse;
    use crate::host::nat_rules::rewrites;

    #[test]
    fn refusals_name_the_port_the_rule_and_the_others() {
        let docker = include_str!("testdata/iptables_nft_docker.json");
        let rules = rewrites(&serde_json::from_str(docker).unwrap()).unwrap();
        // DOCKER handle 10 (-m multiport, unreadable) rewrites every TCP port: of the
        // Docker sample, only rules up to 9 are kept here.
        let rules: Vec<_> = rules.into_iter().filter(|rule| rule.handle != 10).collect();
        assert_eq!(
            refuse(&[22, 8080], &rules).unwrap_err().to_string(),
            "port 8080 is rewritten by netfilter's DNAT rule handle 9 in chain DOCKER of table ip nat (reached from PREROUTING): handshake would answer its SYNs from this host and the ACK, DNATed elsewhere, would be reset; leave 8080 out of the ports to protect, or protect the service where it runs (`nft -a list chain ip nat DOCKER` shows the rule)"
        );
        assert_eq!(
            refuse(&[2222, 22, 8080, 6000], &rules)
                .unwrap_err()
                .to_string(),
            "port 2222 is rewritten by netfilter's REDIRECT rule handle 12 in chain PREROUTING of table ip nat, and so are ports 8080,6000: handshake would answer its SYNs from this host and the ACK, DNATed elsewhere, would be reset; leave 2222,8080,6000 out of the ports to protect, or protect the service where it runs (`nft -a list chain ip nat PREROUTING` shows the rule)"
        );
        refuse(&[22, 443], &rules).unwrap();
    }
}
