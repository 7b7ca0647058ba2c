//! Which TCP ports netfilter's NAT rewrites before the socket lookup, read from the
//! ruleset as `nft -j list ruleset` prints it (native nftables rules, and iptables-nft
//! rules, which live in the same tables with `xt` targets).
//!
//! Only base chains of type `nat` at hook `prerouting` matter: that is where a SYN's
//! destination is rewritten before the kernel looks for its socket (`nf_nat_ipv4_pre_routing`
//! runs at NF_INET_PRE_ROUTING; `output` rewrites only locally sent packets). Jumps and gotos
//! from there are followed. A rule is read generously: a match handshake does not
//! understand (an address, an interface, `-m multiport`) may hold for any packet, so the
//! rule counts for every port its port matches allow; only a match that rules out TCP
//! (`udp dport`, `meta l4proto udp`) rules it out.

use std::collections::HashMap;

use serde_json::Value;

/// A set of TCP ports, as sorted, disjoint, inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    pub fn all() -> Self {
        Self(vec![(0, u16::MAX)])
    }

    fn of(ranges: impl IntoIterator<Item = (u16, u16)>) -> Self {
        let mut ranges: Vec<(u16, u16)> = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::new();
        for (first, last) in ranges {
            match merged.last_mut() {
                Some(prev) if u32::from(first) <= u32::from(prev.1) + 1 => {
                    prev.1 = prev.1.max(last)
                }
                _ => merged.push((first, last)),
            }
        }
        Self(merged)
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0
            .iter()
            .any(|&(first, last)| (first..=last).contains(&port))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn complement(&self) -> Self {
        let mut gaps = Vec::new();
        let mut next = 0u32;
        for &(first, last) in &self.0 {
            if u32::from(first) > next {
                gaps.push((next as u16, first - 1));
            }
            next = u32::from(last) + 1;
        }
        if next <= u32::from(u16::MAX) {
            gaps.push((next as u16, u16::MAX));
        }
        Self(gaps)
    }

    fn intersect(&self, other: &Self) -> Self {
        let mut both = Vec::new();
        for &(a1, b1) in &self.0 {
            for &(a2, b2) in &other.0 {
                both.push((a1.max(a2), b1.min(b2)));
            }
        }
        Self::of(both)
    }
}

/// One NAT rule that rewrites the destination of SYNs to `ports`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// `ip`, `ip6` or `inet`.
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    /// The base chain it is reached from (its own chain, or one that jumps to it).
    pub hook_chain: String,
    /// `DNAT` or `REDIRECT`.
    pub action: String,
    pub ports: PortSet,
    /// An iptables match of the rule that may pick ports but whose ports nft does not
    /// show (`-m multiport`): then `ports` is every port the rest allows.
    pub unread_match: Option<String>,
}

impl Rewrite {
    /// "DNAT rule handle 9 in chain DOCKER of table ip nat (reached from PREROUTING)".
    pub fn describe(&self) -> String {
        let reached = if self.hook_chain == self.chain {
            String::new()
        } else {
            format!(" (reached from {})", self.hook_chain)
        };
        let unread = match &self.unread_match {
            Some(name) => format!(", whose `-m {name}` ports nft cannot show"),
            None => String::new(),
        };
        format!(
            "{} rule handle {} in chain {} of table {} {}{reached}{unread}",
            self.action, self.handle, self.chain, self.family, self.table
        )
    }
}

/// iptables matches that select ports and that nft prints only by name (iptables-nft
/// turns `-p tcp --dport` into a native match, which is read).
const PORT_MATCHES: [&str; 3] = ["multiport", "tcp", "udp"];

/// nftables allows 16 nested jumps (NFT_JUMP_STACK_SIZE); deeper cannot be reached.
const JUMP_DEPTH: usize = 16;

type ChainKey = (String, String, String);

struct Ruleset<'a> {
    /// Each chain's rules' expression lists, in order, with their handles.
    rules: HashMap<ChainKey, Vec<(u64, &'a [Value])>>,
    /// Named sets' elements, for `tcp dport @name`.
    sets: HashMap<ChainKey, &'a Value>,
}

/// Every rule reachable from a NAT prerouting base chain that DNATs or REDIRECTs TCP,
/// with the ports it can apply to. Fails when the document is not nft's JSON.
pub fn rewrites(document: &Value) -> Result<Vec<Rewrite>, String> {
    let objects = document
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("it has no \"nftables\" array")?;
    let mut ruleset = Ruleset {
        rules: HashMap::new(),
        sets: HashMap::new(),
    };
    let mut bases = Vec::new();
    for object in objects {
        if let Some(chain) = object.get("chain") {
            let key = key_of(chain, "name");
            if chain["type"] == "nat"
                && chain["hook"] == "prerouting"
                && ["ip", "ip6", "inet"].contains(&key.0.as_str())
            {
                bases.push(key);
            }
        } else if let Some(rule) = object.get("rule") {
            let expressions = rule["expr"].as_array().map_or(&[][..], Vec::as_slice);
            let handle = rule["handle"].as_u64().unwrap_or(0);
            ruleset
                .rules
                .entry(key_of(rule, "chain"))
                .or_default()
                .push((handle, expressions));
        } else if let Some(set) = object.get("set") {
            ruleset.sets.insert(key_of(set, "name"), &set["elem"]);
        }
    }
    let mut found = Vec::new();
    for base in &bases {
        ruleset.walk(base, &base.2, &PortSet::all(), 0, &mut found);
    }
    Ok(found)
}

fn key_of(object: &Value, name: &str) -> ChainKey {
    let text = |field: &str| object[field].as_str().unwrap_or_default().to_owned();
    (text("family"), text("table"), text(name))
}

impl Ruleset<'_> {
    fn walk(
        &self,
        chain: &ChainKey,
        hook_chain: &str,
        scope: &PortSet,
        depth: usize,
        found: &mut Vec<Rewrite>,
    ) {
        let Some(rules) = self.rules.get(chain) else {
            return;
        };
        if depth > JUMP_DEPTH {
            return;
        }
        for &(handle, expressions) in rules {
            let mut ports = scope.clone();
            let mut unread_match = None;
            for expression in expressions {
                if expression["xt"]["type"] == "match"
                    && let Some(name) = expression["xt"]["name"].as_str()
                    && PORT_MATCHES.contains(&name)
                {
                    unread_match = Some(name.to_owned());
                }
                if let Some(matched) = expression.get("match") {
                    match self.tcp_ports(chain, matched) {
                        Some(allowed) => ports = ports.intersect(&allowed),
                        // Not TCP: nothing later in this rule sees a SYN.
                        None => ports = PortSet::of([]),
                    }
                    continue;
                }
                if ports.is_empty() {
                    break;
                }
                for target in jump_targets(expression) {
                    let next = (chain.0.clone(), chain.1.clone(), target.to_owned());
                    self.walk(&next, hook_chain, &ports, depth + 1, found);
                }
                if let Some(action) = nat_action(expression) {
                    found.push(Rewrite {
                        family: chain.0.clone(),
                        table: chain.1.clone(),
                        chain: chain.2.clone(),
                        handle,
                        hook_chain: hook_chain.to_owned(),
                        action: action.to_owned(),
                        ports: ports.clone(),
                        unread_match: unread_match.clone(),
                    });
                }
            }
        }
    }

    /// The TCP destination ports a match lets through: all of them for a match on
    /// anything else, none when it rules out TCP.
    fn tcp_ports(&self, chain: &ChainKey, matched: &Value) -> Option<PortSet> {
        let (op, left, right) = (
            matched["op"].as_str().unwrap_or("=="),
            &matched["left"],
            &matched["right"],
        );
        let payload = &left["payload"];
        let protocol = payload["protocol"].as_str();
        let field = payload["field"].as_str();
        // `th dport` is the transport header's port, whatever the protocol.
        if matches!(protocol, Some("tcp" | "th")) && field == Some("dport") {
            let Some(listed) = self.ports_of(chain, right) else {
                return Some(PortSet::all());
            };
            return Some(match op {
                "==" | "in" => listed,
                "!=" => listed.complement(),
                "<" | "<=" | ">" | ">=" => bound(op, &listed),
                _ => PortSet::all(),
            });
        }
        if matches!(
            protocol,
            Some("udp" | "udplite" | "sctp" | "dccp" | "icmp" | "icmpv6")
        ) {
            return None;
        }
        let protocol_match = left["meta"]["key"] == "l4proto"
            || (protocol == Some("ip") && field == Some("protocol"))
            || (protocol == Some("ip6") && field == Some("nexthdr"));
        if protocol_match && let Some(tcp) = names_tcp(right) {
            let allowed = if op == "!=" { !tcp } else { tcp };
            return allowed.then(PortSet::all);
        }
        Some(PortSet::all())
    }

    /// The ports a match's right-hand side lists: a port, a range, an anonymous set, or
    /// a named set (`@name`). None when it is something else (a map, a concatenation).
    fn ports_of(&self, chain: &ChainKey, right: &Value) -> Option<PortSet> {
        if let Some(name) = right.as_str().and_then(|text| text.strip_prefix('@')) {
            let elements = self
                .sets
                .get(&(chain.0.clone(), chain.1.clone(), name.to_owned()))?;
            return elements_of(elements);
        }
        if let Some(elements) = right.get("set") {
            return elements_of(elements);
        }
        range_of(right).map(|range| PortSet::of([range]))
    }
}

fn elements_of(elements: &Value) -> Option<PortSet> {
    let ranges: Option<Vec<(u16, u16)>> = elements
        .as_array()?
        .iter()
        // An element with a timeout or comment is {"elem": {"val": ...}}.
        .map(|element| range_of(element.get("elem").map_or(element, |e| &e["val"])))
        .collect();
    ranges.map(PortSet::of)
}

fn range_of(value: &Value) -> Option<(u16, u16)> {
    if let Some(port) = value.as_u64() {
        let port = u16::try_from(port).ok()?;
        return Some((port, port));
    }
    let range = value.get("range")?.as_array()?;
    let end = |i: usize| u16::try_from(range.get(i)?.as_u64()?).ok();
    Some((end(0)?, end(1)?))
}

/// `dport < N` and the like, over the single port N.
fn bound(op: &str, listed: &PortSet) -> PortSet {
    let Some(&(port, _)) = listed.0.first() else {
        return PortSet::all();
    };
    match op {
        "<" if port == 0 => PortSet::of([]),
        "<" => PortSet::of([(0, port - 1)]),
        "<=" => PortSet::of([(0, port)]),
        ">" if port == u16::MAX => PortSet::of([]),
        ">" => PortSet::of([(port + 1, u16::MAX)]),
        _ => PortSet::of([(port, u16::MAX)]),
    }
}

/// Whether a protocol match's right-hand side names TCP ("tcp", 6, or a set holding
/// either); None for what it cannot read.
fn names_tcp(right: &Value) -> Option<bool> {
    let is_tcp = |value: &Value| value == "tcp" || value.as_u64() == Some(6);
    if let Some(set) = right.get("set").and_then(Value::as_array) {
        return Some(set.iter().any(is_tcp));
    }
    (right.is_string() || right.is_u64()).then(|| is_tcp(right))
}

/// The chains a statement jumps or goes to, also from a verdict map's entries.
fn jump_targets(expression: &Value) -> Vec<&str> {
    let mut targets = Vec::new();
    for verdict in ["jump", "goto"] {
        if let Some(target) = expression[verdict]["target"].as_str() {
            targets.push(target);
        }
    }
    if let Some(entries) = expression["vmap"]["data"]["set"].as_array() {
        for entry in entries {
            targets.extend(entry.get(1).into_iter().flat_map(jump_targets));
        }
    }
    targets
}

/// `DNAT` or `REDIRECT` for a statement that rewrites the destination: nft's own
/// `dnat`/`redirect`, or iptables-nft's `xt` target of that name.
fn nat_action(expression: &Value) -> Option<&'static str> {
    if expression.get("dnat").is_some() {
        return Some("DNAT");
    }
    if expression.get("redirect").is_some() {
        return Some("REDIRECT");
    }
    let xt = expression.get("xt")?;
    match (xt["type"].as_str(), xt["name"].as_str()) {
        (Some("target"), Some("DNAT")) => Some("DNAT"),
        (Some("target"), Some("REDIRECT")) => Some("REDIRECT"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{PortSet, Rewrite, rewrites};

    /// `nft -j list ruleset` of rules made with nft in a namespace (see the test names).
    const NATIVE: &str = include_str!("testdata/nft_native.json");
    /// The same of a Docker-style rule set made with iptables 1.8.9 (nf_tables).
    const DOCKER: &str = include_str!("testdata/iptables_nft_docker.json");

    fn read(text: &str) -> Vec<Rewrite> {
        rewrites(&serde_json::from_str::<Value>(text).unwrap()).unwrap()
    }

    /// Which rules (by chain and handle) rewrite `port`.
    fn rewriting(found: &[Rewrite], port: u16) -> Vec<(String, u64)> {
        found
            .iter()
            .filter(|rewrite| rewrite.ports.contains(port))
            .map(|rewrite| (rewrite.chain.clone(), rewrite.handle))
            .collect()
    }

    fn rules(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(c, h)| ((*c).to_owned(), *h)).collect()
    }

    #[test]
    fn native_nft_rules() {
        let found = read(NATIVE);
        // iifname "hs-x" jump svc; svc: meta l4proto tcp ip daddr ... dnat: every port.
        let everywhere = ("svc", 16);
        let cases: [(u16, &[(&str, u64)]); 12] = [
            (8080, &[("prerouting", 7), everywhere]),
            (80, &[("prerouting", 9), everywhere]),
            (443, &[("prerouting", 9), everywhere]),
            (8000, &[("prerouting", 10), everywhere]),
            (8010, &[("prerouting", 10), everywhere]),
            (3000, &[("prerouting", 11), everywhere]),
            (3101, &[("prerouting", 11), everywhere]),
            // udp dport 53 and meta l4proto udp are not TCP.
            (53, &[everywhere]),
            // tcp dport 7100 goto web; web: dnat without a port match.
            (7100, &[everywhere, ("web", 17)]),
            // The output hook and a chain nothing jumps to do not count.
            (7000, &[everywhere]),
            (7200, &[everywhere]),
            // ip6: tcp dport != { 1-5000, 5002-65535 } leaves 0 and 5001.
            (5001, &[everywhere, ("pre", 3)]),
        ];
        for (port, expected) in cases {
            assert_eq!(rewriting(&found, port), rules(expected), "port {port}");
        }
        assert_eq!(rewriting(&found, 22), rules(&[everywhere]));
        let web = found.iter().find(|r| r.chain == "web").unwrap();
        assert_eq!(
            web.describe(),
            "DNAT rule handle 17 in chain web of table ip nat (reached from prerouting)"
        );
        assert_eq!(web.ports, PortSet(vec![(7100, 7100)]));
    }

    #[test]
    fn iptables_nft_docker_rules() {
        let found = read(DOCKER);
        // PREROUTING -m addrtype --dst-type LOCAL -j DOCKER; DOCKER ! -i br -p tcp
        // --dport 8080 -j DNAT.
        assert_eq!(
            rewriting(&found, 8080),
            rules(&[("DOCKER", 9), ("DOCKER", 10)])
        );
        // -p tcp -m multiport --dports 9000,9001 -j DNAT: the ports cannot be read, so the
        // rule counts for every port.
        assert_eq!(rewriting(&found, 9000), rules(&[("DOCKER", 10)]));
        assert_eq!(rewriting(&found, 22), rules(&[("DOCKER", 10)]));
        // -p tcp --dport 2222 -j REDIRECT
        assert_eq!(
            rewriting(&found, 2222),
            rules(&[("DOCKER", 10), ("PREROUTING", 12)])
        );
        // ip6tables -p tcp --dport 6000:6005 -j DNAT
        assert_eq!(
            rewriting(&found, 6003),
            rules(&[("DOCKER", 10), ("PREROUTING", 2)])
        );
        let docker = &found[0];
        assert_eq!(
            docker.describe(),
            "DNAT rule handle 9 in chain DOCKER of table ip nat (reached from PREROUTING)"
        );
        let multiport = &found[1];
        assert_eq!(
            multiport.describe(),
            "DNAT rule handle 10 in chain DOCKER of table ip nat (reached from PREROUTING), whose `-m multiport` ports nft cannot show"
        );
        let redirect = found.iter().find(|r| r.handle == 12).unwrap();
        assert_eq!(
            redirect.describe(),
            "REDIRECT rule handle 12 in chain PREROUTING of table ip nat"
        );
    }

    #[test]
    fn an_empty_ruleset_rewrites_nothing() {
        let empty =
            r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}]}"#;
        assert_eq!(read(empty), vec![]);
        assert_eq!(
            rewrites(&serde_json::json!({"rules": []})).unwrap_err(),
            "it has no \"nftables\" array"
        );
    }

    #[test]
    fn port_sets() {
        let set = PortSet::of([(5, 9), (1, 3), (4, 4), (20, 20)]);
        assert_eq!(set, PortSet(vec![(1, 9), (20, 20)]));
        assert_eq!(
            set.complement(),
            PortSet(vec![(0, 0), (10, 19), (21, u16::MAX)])
        );
        assert_eq!(PortSet::all().complement(), PortSet(vec![]));
        assert_eq!(
            set.intersect(&PortSet::of([(3, 20)])),
            PortSet(vec![(3, 9), (20, 20)])
        );
    }
}
