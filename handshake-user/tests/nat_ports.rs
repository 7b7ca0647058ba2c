//! Ports that netfilter DNATs to another namespace (a container behind the server, as
//! Docker publishes ports) are refused by `attach`, `run` and `ports add`, naming the rule;
//! nothing is pinned or attached, and a port without a rule still attaches.

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use common::{
    container::{CONTAINER_V4, Container},
    pinned::{ATTACH, Bed, error},
};
use handshake::lab::{SERVER_IFACE, SERVER_V4, echo::exchange, run_in};

const ATTACH_8443: [&str; 7] = [
    "attach",
    "--iface",
    SERVER_IFACE,
    "--ports",
    "8443",
    "--xdp-mode",
    "native",
];

/// What every refusal of 8080 says after the rule.
const WHY: &str = ": handshake would answer its SYNs from this host and the ACK, DNATed elsewhere, would be reset; leave 8080 out of the ports to protect, or protect the service where it runs";

fn exec(bed: &Bed, command: &[&str]) {
    bed.lab.exec(&bed.lab.server, command).unwrap();
}

/// The handle of the last rule of chain `chain` in table `ip nat`: the kernel numbers
/// handles per table, and 6.1 and 6.18 count differently.
fn last_rule_handle(bed: &Bed, chain: &str) -> u64 {
    let text = bed
        .lab
        .output(
            &bed.lab.server,
            &["nft", "-j", "list", "chain", "ip", "nat", chain],
        )
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let objects = document["nftables"].as_array().unwrap();
    objects
        .iter()
        .rev()
        .find_map(|object| object["rule"]["handle"].as_u64())
        .unwrap_or_else(|| panic!("no rule in chain {chain}: {text}"))
}

/// A connection to the server's 8080 reaches the container's service, not the server's
/// own listener on 8080 (docker-proxy's place): the DNAT is real.
fn assert_dnat_reaches_container(bed: &Bed, container: &Container) {
    let before = bed.lab.nstat(&container.ns, "TcpPassiveOpens").unwrap();
    run_in(&bed.lab.client, || {
        exchange(SocketAddr::from((SERVER_V4, 8080)), b"to the container")
    })
    .unwrap()
    .unwrap();
    let after = bed.lab.nstat(&container.ns, "TcpPassiveOpens").unwrap();
    assert_eq!(
        after - before,
        1,
        "the connection did not reach the container"
    );
}

/// `attach`, `run` and `ports add` refuse 8080 with `expected`, changing nothing; 8443
/// attaches.
fn assert_8080_refused(bed: &Bed, expected: &str) {
    assert_eq!(bed.error(&ATTACH), expected);
    assert!(!bed.xdp_attached(), "a refused attach left XDP attached");
    assert!(
        !Path::new(&bed.pin_dir).exists(),
        "a refused attach left pins in {}",
        bed.pin_dir
    );
    let run = bed.run(&[]).wait_with_output().unwrap();
    assert_eq!(error(run, &["run"]), expected);
    assert!(!bed.xdp_attached(), "a refused run left XDP attached");

    bed.ok(&ATTACH_8443);
    let add = ["ports", "add", "--iface", SERVER_IFACE, "8080"];
    assert_eq!(bed.error(&add), expected);
    assert_eq!(
        bed.ok(&["ports", "list", "--iface", SERVER_IFACE]),
        "hs-server: protected ports 8443\n"
    );
    bed.ok(&["detach", "--iface", SERVER_IFACE]);
}

#[test]
fn a_port_an_nft_rule_dnats_is_refused() {
    let bed = Bed::new();
    let container = Container::behind(&bed.lab);
    exec(&bed, &["nft", "add", "table", "ip", "nat"]);
    let chain = "{ type nat hook prerouting priority dstnat; }";
    exec(
        &bed,
        &["nft", "add", "chain", "ip", "nat", "prerouting", chain],
    );
    let to = format!("{CONTAINER_V4}:80");
    let rule = ["tcp", "dport", "8080", "dnat", "to", &to];
    exec(
        &bed,
        &[
            &["nft", "add", "rule", "ip", "nat", "prerouting"][..],
            &rule,
        ]
        .concat(),
    );
    assert_dnat_reaches_container(&bed, &container);
    let handle = last_rule_handle(&bed, "prerouting");
    assert_8080_refused(
        &bed,
        &format!(
            "handshake: port 8080 is rewritten by netfilter's DNAT rule handle {handle} in chain prerouting of table ip nat{WHY} (`nft -a list chain ip nat prerouting` shows the rule)\n"
        ),
    );
}

#[test]
fn a_port_docker_style_iptables_rules_dnat_is_refused() {
    let bed = Bed::new();
    let container = Container::behind(&bed.lab);
    // Docker's own shape: PREROUTING jumps to DOCKER for local addresses, DOCKER DNATs
    // the published port unless the packet comes from the container side.
    let to = format!("{CONTAINER_V4}:80");
    for rule in [
        &["-N", "DOCKER"][..],
        &[
            "-A",
            "PREROUTING",
            "-m",
            "addrtype",
            "--dst-type",
            "LOCAL",
            "-j",
            "DOCKER",
        ],
        &[
            "-A",
            "DOCKER",
            "!",
            "-i",
            "hs-ctr",
            "-p",
            "tcp",
            "--dport",
            "8080",
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ],
    ] {
        exec(&bed, &[&["iptables", "-t", "nat"][..], rule].concat());
    }
    assert_dnat_reaches_container(&bed, &container);
    let handle = last_rule_handle(&bed, "DOCKER");
    assert_8080_refused(
        &bed,
        &format!(
            "handshake: port 8080 is rewritten by netfilter's DNAT rule handle {handle} in chain DOCKER of table ip nat (reached from PREROUTING){WHY} (`nft -a list chain ip nat DOCKER` shows the rule)\n"
        ),
    );
}

/// A folder holding only the commands a test lets `handshake` find: no `nft`.
fn path_without_nft(bed: &Bed) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{}-no-nft", bed.lab.server));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    for command in ["nsenter", "ip"] {
        let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .map(|folder| Path::new(folder).join(command))
            .find(|path| path.exists())
            .unwrap_or_else(|| panic!("{command} is not installed"));
        std::os::unix::fs::symlink(found, dir.join(command)).unwrap();
    }
    dir
}

#[test]
fn without_nft_attach_warns_only_where_nftables_tables_exist() {
    let bed = Bed::new();
    let path = path_without_nft(&bed);
    let attach = |args: &[&str]| {
        let output = bed.command(args).env("PATH", &path).output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(output.status.success(), "{args:?}: {stderr}");
        stderr
    };
    // A fresh namespace has no table: no rule can rewrite anything, nothing to say.
    assert_eq!(attach(&ATTACH), "");
    bed.ok(&["detach", "--iface", SERVER_IFACE]);

    exec(&bed, &["nft", "add", "table", "ip", "nat"]);
    assert_eq!(
        attach(&ATTACH_8443),
        "handshake: warning: could not check whether netfilter DNATs ports 8443: nftables tables exist but `nft` is not installed to read them (Debian: apt install nftables); a port DNATed elsewhere (e.g. Docker's published ports) must not be protected\n"
    );
    bed.ok(&["detach", "--iface", SERVER_IFACE]);
    let _ = std::fs::remove_dir_all(&path);
}
