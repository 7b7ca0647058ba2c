//! End to end in network namespaces: real clients connect over a veth to a real server
//! while handshake, attached in native XDP mode on the server's veth, answers their SYNs.
//! The handshake counters and the kernel's own counters (nstat) must agree exactly.

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use common::{
    packet,
    protected::PORT,
    tcp_info::{self, TCPI_OPT_SACK, TCPI_OPT_TIMESTAMPS, TCPI_OPT_WSCALE},
};
use handshake::{
    counters::Snapshot,
    lab::{CLIENT_V4, CLIENT_V6, Lab, SERVER_V4, SERVER_V6, run_in},
};
use handshake_common::counters::Counter;
const CONNECTIONS: u32 = 20;

/// What the client saw of one connection: tcpi_options and snd_wscale.
#[derive(Debug, PartialEq, Eq)]
struct Negotiated {
    options: u8,
    snd_wscale: u8,
}

/// Connects, sends `size` bytes, reads them back, and reports the negotiated options.
fn echo(server: SocketAddr, size: usize) -> Negotiated {
    let info = tcp_info::echo(server, size);
    Negotiated {
        options: info.options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE),
        snd_wscale: info.snd_wscale,
    }
}

/// Makes `CONNECTIONS` connections over each family and returns what each negotiated.
fn connect_both_families(lab: &Lab, size: usize) -> Vec<Negotiated> {
    run_in(&lab.client, move || {
        let mut negotiated = Vec::new();
        for address in [IpAddr::V4(SERVER_V4), IpAddr::V6(SERVER_V6)] {
            for _ in 0..CONNECTIONS {
                negotiated.push(echo(SocketAddr::new(address, PORT), size));
            }
        }
        negotiated
    })
    .unwrap()
}

fn kernel_counters(lab: &Lab) -> [u64; 4] {
    [
        "TcpExtSyncookiesRecv",
        "TcpExtSyncookiesSent",
        "TcpExtSyncookiesFailed",
        "TcpOutRsts",
    ]
    .map(|name| lab.nstat(&lab.server, name).unwrap())
}

/// The handshake counters that describe handshakes, which must match exactly.
fn handshake_counts(counted: &Snapshot) -> [(Counter, u64); 8] {
    [
        Counter::SynAckSent,
        Counter::SynPassedNoCookie,
        Counter::SynPassedNoListener,
        Counter::SynPassedExisting,
        Counter::SynPassedError,
        Counter::AckValidated,
        Counter::AckDroppedForged,
        Counter::Malformed,
    ]
    .map(|counter| (counter, counted.get(counter)))
}

fn expect(sent: u64, validated: u64, no_cookie: u64) -> [(Counter, u64); 8] {
    [
        (Counter::SynAckSent, sent),
        (Counter::SynPassedNoCookie, no_cookie),
        (Counter::SynPassedNoListener, 0),
        (Counter::SynPassedExisting, 0),
        (Counter::SynPassedError, 0),
        (Counter::AckValidated, validated),
        (Counter::AckDroppedForged, 0),
        (Counter::Malformed, 0),
    ]
}

#[test]
fn connections_complete_through_xdp_cookies_on_ipv4_and_ipv6() {
    // tcp_timestamps=0: the kernel's own cookie SYN-ACK carries MSS only, and so does ours.
    let bed = common::protected::protect("2", "0", false);
    let kernel_before = kernel_counters(&bed.lab);
    let negotiated = connect_both_families(&bed.lab, 64);
    let counted = bed.handshake.counters().unwrap();
    let total = u64::from(2 * CONNECTIONS);
    assert_eq!(handshake_counts(&counted), expect(total, total, 0));
    assert!(
        counted.get(Counter::PassedEstablished) >= 2 * total,
        "data and FINs pass as established"
    );
    let kernel_after = kernel_counters(&bed.lab);
    // [SyncookiesRecv, SyncookiesSent, SyncookiesFailed, OutRsts]: the kernel accepted every
    // cookie ACK and sent no SYN-ACK of its own.
    assert_eq!(
        [0, 1, 2].map(|i| kernel_after[i] - kernel_before[i]),
        [total, 0, 0],
        "kernel cookie counters"
    );
    // MSS-only SYN-ACKs: like the kernel's own cookies without timestamps, no options.
    assert!(negotiated.iter().all(|n| n.options == 0), "{negotiated:?}");
}

#[test]
fn timestamps_mode_negotiates_timestamps_sack_and_window_scaling() {
    let bed = common::protected::protect("2", "2", true);
    // 256 KiB each way: more than an unscaled 64 KiB window, so scaling must work.
    let negotiated = connect_both_families(&bed.lab, 256 * 1024);
    let counted = bed.handshake.counters().unwrap();
    let total = u64::from(2 * CONNECTIONS);
    assert_eq!(handshake_counts(&counted), expect(total, total, 0));
    let all = TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE;
    for n in &negotiated {
        assert_eq!(
            n,
            &Negotiated {
                options: all,
                snd_wscale: bed.wscale
            }
        );
    }
    assert_eq!(
        bed.lab
            .nstat(&bed.lab.server, "TcpExtSyncookiesRecv")
            .unwrap(),
        total
    );
    assert_eq!(
        bed.lab
            .nstat(&bed.lab.server, "TcpExtSyncookiesFailed")
            .unwrap(),
        0
    );
}

#[test]
fn with_tcp_timestamps_1_syns_offering_timestamps_are_the_kernels() {
    let bed = common::protected::protect("2", "1", false);
    let kernel_before = kernel_counters(&bed.lab);
    let negotiated = connect_both_families(&bed.lab, 64);
    let counted = bed.handshake.counters().unwrap();
    let total = u64::from(2 * CONNECTIONS);
    // Linux clients offer timestamps: every SYN went to the kernel, which answered with
    // its own cookies (TSval with its secret offset) and accepted every third ACK.
    assert_eq!(
        [
            Counter::SynPassedKernelOnly,
            Counter::SynAckSent,
            Counter::AckValidated
        ]
        .map(|counter| counted.get(counter)),
        [total, 0, total],
        "SynPassedKernelOnly, SynAckSent, AckValidated"
    );
    let kernel_after = kernel_counters(&bed.lab);
    assert_eq!(
        [0, 1, 2].map(|i| kernel_after[i] - kernel_before[i]),
        [total, total, 0],
        "SyncookiesRecv, SyncookiesSent, SyncookiesFailed"
    );
    let all = TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE;
    assert!(
        negotiated.iter().all(|n| n.options == all),
        "{negotiated:?}"
    );
}

#[test]
fn without_cookie_mode_the_kernel_answers_and_syns_are_counted_as_passed() {
    let bed = common::protected::protect("1", "2", false);
    let negotiated = connect_both_families(&bed.lab, 64);
    let counted = bed.handshake.counters().unwrap();
    let total = u64::from(2 * CONNECTIONS);
    assert_eq!(handshake_counts(&counted), expect(0, 0, total));
    assert_eq!(
        bed.lab
            .nstat(&bed.lab.server, "TcpExtSyncookiesRecv")
            .unwrap(),
        0
    );
    // The kernel's own SYN-ACKs negotiate everything.
    assert!(
        negotiated
            .iter()
            .all(|n| n.options == TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE)
    );
}

fn forged_acks() -> Vec<Vec<u8>> {
    packet::forged_acks(
        FORGED,
        PORT,
        (CLIENT_V4.octets(), SERVER_V4.octets()),
        (CLIENT_V6.octets(), SERVER_V6.octets()),
    )
}

const FORGED: u64 = 200;

#[test]
fn stray_acks_outside_a_flood_draw_the_kernels_rst() {
    let bed = common::protected::protect("2", "1", false);
    // One real handshake first: the listener has now issued a cookie, which is when the
    // kernel checks cookie ACKs (and RSTs those that fail).
    connect_both_families(&bed.lab, 16);
    let before = bed.handshake.counters().unwrap();
    let kernel_before = kernel_counters(&bed.lab);

    common::raw::send_frames(&bed.lab, forged_acks());
    // What the client waits for: the kernel's RST, well within a second.
    std::thread::sleep(Duration::from_millis(300));

    let counted = bed.handshake.counters().unwrap().since(&before);
    assert_eq!(
        [
            Counter::AckPassedNoFlood,
            Counter::AckDroppedForged,
            Counter::AckValidated
        ]
        .map(|counter| counted.get(counter)),
        [FORGED, 0, 0],
        "AckPassedNoFlood, AckDroppedForged, AckValidated"
    );
    let kernel_after = kernel_counters(&bed.lab);
    // The kernel checked each as a cookie, refused it and answered with a RST, as it does
    // without handshake.
    assert_eq!(
        [2, 3].map(|i| kernel_after[i] - kernel_before[i]),
        [FORGED, FORGED],
        "SyncookiesFailed, OutRsts"
    );
}

#[test]
fn forged_acks_during_a_flood_are_dropped_at_xdp_and_draw_no_rst() {
    let mut bed = common::protected::protect("2", "2", false);
    // A flood, scaled down: 20 SYN-ACKs a second on one CPU (40 real handshakes make it).
    bed.reconfigure(|config| config.flood_syn_acks = 20);
    let lab = &bed.lab;
    let frames = forged_acks();
    let before = bed.handshake.counters().unwrap();
    let kernel_before = kernel_counters(lab);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                common::pin_to_cpu_0();
                connect_both_families(lab, 16);
                common::raw::send_frames(lab, frames);
            })
            .join()
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));

    let counted = bed.handshake.counters().unwrap().since(&before);
    assert_eq!(
        [Counter::AckDroppedForged, Counter::AckPassedNoFlood].map(|counter| counted.get(counter)),
        [FORGED, 0],
        "AckDroppedForged, AckPassedNoFlood"
    );
    let kernel_after = kernel_counters(lab);
    // No cookie failure and no RST: the kernel never saw them.
    assert_eq!(
        [2, 3].map(|i| kernel_after[i] - kernel_before[i]),
        [0, 0],
        "SyncookiesFailed, OutRsts"
    );
    // Real connections still complete.
    connect_both_families(lab, 16);
}

/// Frames that are not this host's, on a promiscuous port (a bridge member, a capture):
/// a neighbour's MAC, and our MAC with a neighbour's address (which this host would route).
/// handshake passes them untouched and the kernel does with them what it does without
/// handshake: it never answers, drops the neighbour's frame as PACKET_OTHERHOST, and
/// refuses to forward the others (`ip_error`, `ip6_forward`: InAddrErrors).
#[test]
fn frames_for_other_hosts_pass_to_the_kernel_and_are_not_answered() {
    let bed = common::protected::protect("2", "2", false);
    let lab = &bed.lab;
    lab.output(
        &lab.server,
        &[
            "ip",
            "link",
            "set",
            handshake::lab::SERVER_IFACE,
            "promisc",
            "on",
        ],
    )
    .unwrap();
    let syn = |port| packet::Tcp::syn(port, PORT, 0x0bad_cafe, &[2, 4, 0x05, 0xb4]);
    let neighbour_v4 = [198, 18, 0, 3];
    let mut neighbour_v6 = SERVER_V6.octets();
    neighbour_v6[15] = 3;
    let mut neighbours_mac = packet::ipv4(CLIENT_V4.octets(), SERVER_V4.octets(), &[], &syn(41001));
    neighbours_mac[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    let kernel = |lab: &Lab| {
        [
            "IpInAddrErrors",
            "Ip6InAddrErrors",
            "TcpExtSyncookiesSent",
            "TcpOutRsts",
        ]
        .map(|name| lab.nstat(&lab.server, name).unwrap())
    };
    let before = bed.handshake.counters().unwrap();
    let kernel_before = kernel(lab);

    assert_eq!(
        common::raw::syn_ack_for_as_addressed(lab, neighbours_mac),
        None
    );
    let routed_v4 = packet::ipv4(CLIENT_V4.octets(), neighbour_v4, &[], &syn(41002));
    assert_eq!(common::raw::syn_ack_for(lab, routed_v4), None);
    let routed_v6 = packet::ipv6(CLIENT_V6.octets(), neighbour_v6, 64, &syn(41003));
    assert_eq!(common::raw::syn_ack_for(lab, routed_v6), None);

    let counted = bed.handshake.counters().unwrap().since(&before);
    assert_eq!(
        [Counter::SynPassedNotForHost, Counter::SynAckSent].map(|counter| counted.get(counter)),
        [3, 0],
        "SynPassedNotForHost, SynAckSent"
    );
    let kernel_after = kernel(lab);
    assert_eq!(
        [0, 1, 2, 3].map(|i| kernel_after[i] - kernel_before[i]),
        [1, 1, 0, 0],
        "IpInAddrErrors, Ip6InAddrErrors, TcpExtSyncookiesSent, TcpOutRsts"
    );
}
