//! A route out of the interface whose metrics change the kernel's SYN-ACK (here `advmss`)
//! makes `attach` refuse the interface, naming the route; nothing is attached. A metric
//! that says what handshake says anyway (an IPv6 router advertisement's hop limit) does
//! not, and neither does removing the offending one.

mod common;

use common::pinned::{ATTACH, Bed};
use handshake::lab::SERVER_IFACE;

#[test]
fn a_route_whose_metrics_change_the_syn_ack_is_refused_at_attach() {
    let bed = Bed::new();
    let exec = |command: &[&str]| bed.lab.exec(&bed.lab.server, command).unwrap();
    exec(&[
        "ip",
        "route",
        "add",
        "198.19.7.0/24",
        "dev",
        SERVER_IFACE,
        "advmss",
        "1000",
    ]);
    assert_eq!(
        bed.error(&ATTACH),
        format!(
            "handshake: the route 198.19.7.0/24 dev {SERVER_IFACE} has the metric advmss 1000, which sets the MSS (handshake advertises 1460); handshake does not read routes and would answer otherwise: remove the metric (`ip route change 198.19.7.0/24 dev {SERVER_IFACE} ...` without it) or do not protect {SERVER_IFACE}\n"
        )
    );
    assert!(!bed.xdp_attached(), "a refused attach attached nothing");

    exec(&["ip", "route", "del", "198.19.7.0/24"]);
    // What IPv6 router advertisements put on their routes: the interface's hop limit.
    exec(&[
        "ip",
        "-6",
        "route",
        "add",
        "2001:2:0:7::/64",
        "dev",
        SERVER_IFACE,
        "hoplimit",
        "64",
    ]);
    bed.ok(&ATTACH);
    assert!(bed.xdp_attached());
}
