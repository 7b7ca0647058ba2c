//! An interface that strips VLAN tags before XDP (rx-vlan-offload, on by default on veth)
//! while a VLAN device sits on it is refused; with the offload off it attaches and a SYN
//! on the VLAN is answered on the VLAN.
//!
//! Creating the VLAN device needs the 8021q module: the CI's 6.1 VM has it and runs the
//! real path; a kernel without it (the 6.18 development machines) runs the same decision
//! on the interface's features as the kernel reports them and a VLAN list of one.

mod common;

use std::net::SocketAddr;

use common::pinned::{ATTACH, Bed, total};
use handshake::{
    host::vlan_offload::{self, RxVlanOffload, Tag, VlanUpper},
    lab::{CLIENT_IFACE, SERVER_IFACE, echo::exchange, run_in},
};

const UPPER: &str = "hs-server.10";

const REFUSAL: &str = "hs-server strips VLAN tags before XDP (rx-vlan-offload: on) and has VLAN devices hs-server.10: their SYNs would reach handshake untagged and be answered untagged, on the native VLAN; run `ethtool -K hs-server rxvlan off`, then attach again";

fn exec(bed: &Bed, ns: &str, command: &[&str]) {
    bed.lab.exec(ns, command).unwrap();
}

/// VLAN 10 on `iface` in `ns`, or None when the kernel has no 8021q.
fn add_vlan(bed: &Bed, ns: &str, iface: &str, address: &str) -> Option<()> {
    let name = format!("{iface}.10");
    let add = [
        "ip", "link", "add", "link", iface, "name", &name, "type", "vlan", "id", "10",
    ];
    match bed.lab.output(ns, &add) {
        Ok(_) => {}
        // iproute2's answer when the kernel knows no "vlan" link kind.
        Err(error) if error.to_string().ends_with("Error: Unknown device type.") => return None,
        Err(error) => panic!("creating {name}: {error}"),
    }
    exec(bed, ns, &["ip", "addr", "add", address, "dev", &name]);
    exec(bed, ns, &["ip", "link", "set", &name, "up"]);
    Some(())
}

fn offload(bed: &Bed) -> RxVlanOffload {
    run_in(&bed.lab.server, || {
        vlan_offload::rx_vlan_offload(SERVER_IFACE)
    })
    .unwrap()
    .unwrap()
}

#[test]
fn a_vlan_device_on_an_interface_that_strips_tags_is_refused() {
    let bed = Bed::new();
    let server = bed.lab.server.clone();
    exec(
        &bed,
        &server,
        &["ethtool", "-K", SERVER_IFACE, "rxvlan", "on"],
    );
    let on = offload(&bed);
    assert!(on.customer, "veth strips C-tags by default: {on:?}");
    if add_vlan(&bed, &server, SERVER_IFACE, "198.18.10.1/24").is_some() {
        assert_eq!(bed.error(&ATTACH), format!("handshake: {REFUSAL}\n"));
        assert!(!bed.xdp_attached(), "a refused attach left XDP attached");
        assert!(!std::path::Path::new(&bed.pin_dir).exists());
    } else {
        // No 8021q here: the same decision on the features the kernel reports.
        let upper = VlanUpper {
            name: UPPER.to_owned(),
            tag: Tag::Customer,
        };
        let refused = vlan_offload::refuse(SERVER_IFACE, on, std::slice::from_ref(&upper));
        assert_eq!(refused.unwrap_err().to_string(), REFUSAL);
        exec(
            &bed,
            &server,
            &["ethtool", "-K", SERVER_IFACE, "rxvlan", "off"],
        );
        let off = offload(&bed);
        assert!(!off.customer, "rxvlan off did not show: {off:?}");
        vlan_offload::refuse(SERVER_IFACE, off, &[upper]).unwrap();
    }
}

#[test]
fn with_rxvlan_off_a_syn_on_the_vlan_is_answered_on_the_vlan() {
    let bed = Bed::new();
    let (server, client) = (bed.lab.server.clone(), bed.lab.client.clone());
    exec(
        &bed,
        &server,
        &["ethtool", "-K", SERVER_IFACE, "rxvlan", "off"],
    );
    let vlans = add_vlan(&bed, &server, SERVER_IFACE, "198.18.10.1/24")
        .and_then(|()| add_vlan(&bed, &client, CLIENT_IFACE, "198.18.10.2/24"));
    bed.ok(&ATTACH);
    if vlans.is_none() {
        // Without 8021q only the attach can be shown here; the tagged answer itself is
        // golden_options_vlan.rs's, and this test's in the 6.1 VM.
        assert!(bed.xdp_attached());
        return;
    }
    // As on a wire: the client's tags in the frame, not in the veth's metadata.
    exec(
        &bed,
        &client,
        &["ethtool", "-K", CLIENT_IFACE, "txvlan", "off"],
    );
    run_in(&client, || {
        exchange(SocketAddr::from(([198, 18, 10, 1], 8080)), b"on vlan 10")
    })
    .unwrap()
    .unwrap();
    let stats = bed.stats();
    assert_eq!(total(&stats, "syn_ack_sent"), 1, "{stats}");
    assert_eq!(total(&stats, "ack_validated"), 1, "{stats}");
}
