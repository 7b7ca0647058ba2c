//! Routes whose metrics change the kernel's SYN-ACK. The kernel answers over the route
//! back to the client, and takes from its metrics the MSS (`advmss`, or `mtu` through
//! `ipv4_default_advmss`), the window clamp (`window`), the initial window (`initrwnd`),
//! the TTL or hop limit (`hoplimit`) and ECN (`features ecn`). The XDP program reads no
//! routes, so an interface with such a route is refused, naming the route and the fix,
//! unless the metric says what handshake would say anyway (IPv6 routes learned from router
//! advertisements carry `hoplimit`, usually the interface's own).

use anyhow::bail;
use serde_json::Value;

/// What handshake's SYN-ACK says where a route's metric would speak.
#[derive(Clone, Copy, Debug)]
pub struct Answer {
    pub mtu: u32,
    pub mss_ipv4: u16,
    pub mss_ipv6: u16,
    /// `net.ipv4.ip_default_ttl` and the interface's IPv6 hop limit.
    pub ttl: u8,
    pub hop_limit: u8,
}

/// Refuses `iface` if a route out of it has a metric that changes the kernel's SYN-ACK.
pub fn refuse_route_metrics(iface: &str, answer: Answer) -> anyhow::Result<()> {
    for (family, flag) in [(Family::Ipv4, "-4"), (Family::Ipv6, "-6")] {
        let output = std::process::Command::new("ip")
            .args([flag, "-json", "route", "show", "table", "all", "dev", iface])
            .output();
        let Ok(output) = output else {
            bail!(
                "running `ip route` failed: install iproute2 so that handshake can read {iface}'s routes"
            );
        };
        let routes: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_default();
        refuse(iface, family, answer, &routes)?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

/// The decision on routes as `ip -json route` prints them.
pub fn refuse(iface: &str, family: Family, answer: Answer, routes: &[Value]) -> anyhow::Result<()> {
    for route in routes {
        let Some(metrics) = route["metrics"].as_array() else {
            continue;
        };
        for metrics in metrics.iter().filter_map(Value::as_object) {
            for (name, value) in metrics {
                if let Some(why) = changes_the_answer(family, answer, name, value) {
                    let dst = route["dst"].as_str().unwrap_or("default");
                    let table = route["table"]
                        .as_str()
                        .map_or(String::new(), |table| format!(" table {table}"));
                    let flag = if family == Family::Ipv6 { " -6" } else { "" };
                    bail!(
                        "the route {dst} dev {iface}{table} has the metric {name} {value}, which {why}; handshake does not read routes and would answer otherwise: remove the metric (`ip{flag} route change {dst} dev {iface}{table} ...` without it) or do not protect {iface}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// Why metric `name` = `value` makes the kernel's SYN-ACK differ from handshake's, if it
/// does.
fn changes_the_answer(family: Family, answer: Answer, name: &str, value: &Value) -> Option<String> {
    let number = value.as_u64();
    let (mss, ttl) = match family {
        Family::Ipv4 => (answer.mss_ipv4, answer.ttl),
        Family::Ipv6 => (answer.mss_ipv6, answer.hop_limit),
    };
    match name {
        "advmss" if number != Some(u64::from(mss)) => {
            Some(format!("sets the MSS (handshake advertises {mss})"))
        }
        "mtu" if number.is_none_or(|mtu| mtu < u64::from(answer.mtu)) => Some(format!(
            "lowers the MSS below the interface MTU's ({})",
            answer.mtu
        )),
        "window" => Some("clamps the window".to_owned()),
        "initrwnd" => Some("sets the initial window".to_owned()),
        "hoplimit" if number != Some(u64::from(ttl)) => {
            Some(format!("sets the TTL or hop limit (handshake sends {ttl})"))
        }
        "features" if value.to_string().contains("ecn") => {
            Some("negotiates ECN on the route".to_owned())
        }
        "lock" => Some("locks a metric (a locked MTU sends the SYN-ACK without DF)".to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ANSWER: Answer = Answer {
        mtu: 1500,
        mss_ipv4: 1460,
        mss_ipv6: 1440,
        ttl: 64,
        hop_limit: 64,
    };

    #[test]
    fn metrics_that_change_the_answer_are_refused() {
        let routes =
            [json!({"dst": "198.19.5.0/24", "dev": "eth0", "metrics": [{"advmss": 1000}]})];
        assert_eq!(
            refuse("eth0", Family::Ipv4, ANSWER, &routes)
                .unwrap_err()
                .to_string(),
            "the route 198.19.5.0/24 dev eth0 has the metric advmss 1000, which sets the MSS (handshake advertises 1460); handshake does not read routes and would answer otherwise: remove the metric (`ip route change 198.19.5.0/24 dev eth0 ...` without it) or do not protect eth0"
        );
        for metrics in [
            json!({"window": 20000}),
            json!({"initrwnd": 5}),
            json!({"mtu": 1400}),
            json!({"hoplimit": 9}),
        ] {
            let routes = [json!({"dst": "default", "metrics": [metrics]})];
            assert!(
                refuse("eth0", Family::Ipv4, ANSWER, &routes).is_err(),
                "{metrics}"
            );
        }
    }

    #[test]
    fn metrics_that_say_what_handshake_says_pass() {
        // A router advertisement's hop limit, the interface's own; initcwnd is the
        // sender's business, not the SYN-ACK's.
        let routes = [
            json!({"dst": "default", "metrics": [{"hoplimit": 64, "initcwnd": 10}]}),
            json!({"dst": "2001:2::/48", "metrics": [{"advmss": 1440, "mtu": 1500}]}),
            json!({"dst": "2001:2:1::/48"}),
        ];
        refuse("eth0", Family::Ipv6, ANSWER, &routes).unwrap();
    }
}
