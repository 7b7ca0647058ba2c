//! Hostile traffic in the namespace test bed: crafted frames from a raw socket, while real
//! clients connect. Every real connection must complete, every crafted frame must land in
//! the counter the README names, and the server's kernel must see exactly what handshake
//! passed it (no RST it should not send, no cookie failure, no reset connection).
//!
//! The crafted frames come from 198.18.0.3 and 2001:2::3, addresses on the link that no
//! namespace owns: what handshake or the kernel sends back to them goes nowhere, so the
//! client's kernel never answers (and never disturbs the counters).

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    thread,
    time::Duration,
};

use common::{
    packet::{self, ACK, FIN, LINUX_SYN_OPTIONS, RST, SYN, Tcp, URG, c_tag, s_tag, tagged},
    protected::{PORT, Protected, protect},
    raw::send_frames,
};
use handshake::lab::{Lab, SERVER_V4, SERVER_V6, echo::exchange, run_in};
use handshake_common::counters::{ALL, Counter};

const FORGER: [u8; 4] = [198, 18, 0, 3];
const FORGER6: [u8; 16] = [0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
const SERVER: [u8; 4] = SERVER_V4.octets();
const SERVER6: [u8; 16] = SERVER_V6.octets();
const REAL_CONNECTIONS: u64 = 40;
const MSS_1460: [u8; 4] = [2, 4, 5, 0xb4];

fn v4(source_port: u16, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let tcp = Tcp {
        flags,
        payload,
        ..Tcp::syn(source_port, PORT, 0x1000 + u32::from(source_port), options)
    };
    packet::ipv4(FORGER, SERVER, &[], &tcp)
}

fn v6(source_port: u16, flags: u8) -> Vec<u8> {
    let tcp = Tcp {
        flags,
        ..Tcp::syn(source_port, PORT, u32::from(source_port), &MSS_1460)
    };
    packet::ipv6(FORGER6, SERVER6, 64, &tcp)
}

/// A protected lab that counts every moment as a flood (`flood_syn_acks` 0): each ACK
/// without a valid cookie here is forged, and must be dropped. (end_to_end.rs tests how a
/// flood is told from none.)
fn under_a_flood() -> Protected {
    let mut bed = protect("2", "2", false);
    bed.reconfigure(|config| config.flood_syn_acks = 0);
    bed
}

/// One of every crafted case, with the counter it must move. `n` keeps ports apart.
fn barrage_round(n: u16) -> Vec<(Vec<u8>, Counter)> {
    let port = |case: u16| 20000 + n * 64 + case;
    let mut bad_ip = v4(port(0), SYN, &MSS_1460, &[]);
    bad_ip[24] ^= 0xff;
    let mut bad_tcp = v4(port(1), SYN, &MSS_1460, &[]);
    bad_tcp[50] ^= 0xff;
    let mut truncated = v4(port(2), SYN, &MSS_1460, &[]);
    truncated.truncate(50);
    let mut low_offset = v4(port(3), SYN, &MSS_1460, &[]);
    low_offset[46] = 0x40;
    packet::refresh_checksums(&mut low_offset);
    let mut fragment = v4(port(4), SYN, &MSS_1460, &[]);
    fragment[20] = 0x20;
    packet::refresh_checksums(&mut fragment);
    let land = packet::ipv4(SERVER, SERVER, &[], &Tcp::syn(port(5), PORT, 1, &MSS_1460));
    let loopback = packet::ipv4(
        [127, 0, 0, 1],
        SERVER,
        &[],
        &Tcp::syn(port(6), PORT, 1, &[]),
    );
    let mut three_tags = v4(port(7), SYN, &MSS_1460, &[]);
    three_tags = tagged(&three_tags, &[s_tag(1), c_tag(2), c_tag(3)]);
    vec![
        (v4(port(10), SYN, &[], &[]), Counter::SynAckSent),
        (
            v4(port(11), SYN, &LINUX_SYN_OPTIONS, &[]),
            Counter::SynAckSent,
        ),
        (
            v4(port(12), SYN | URG, &MSS_1460, b"data in a SYN"),
            Counter::SynAckSent,
        ),
        (
            v4(port(13), SYN, &[3, 0, 2, 4, 1, 1, 1, 1], &[]),
            Counter::SynAckSent,
        ),
        (v6(port(14), SYN), Counter::SynAckSent),
        (
            tagged(&v4(port(15), SYN, &MSS_1460, &[]), &[c_tag(9)]),
            Counter::SynAckSent,
        ),
        (
            tagged(&v6(port(16), SYN), &[s_tag(9), c_tag(10)]),
            Counter::SynAckSent,
        ),
        (bad_ip, Counter::SynPassedBadChecksum),
        (bad_tcp, Counter::SynPassedBadChecksum),
        (land, Counter::SynDroppedInvalid),
        (loopback, Counter::SynDroppedInvalid),
        (v4(0, SYN, &MSS_1460, &[]), Counter::SynDroppedInvalid),
        (truncated, Counter::Malformed),
        (low_offset, Counter::Malformed),
        (fragment, Counter::PassedNotTcp),
        (three_tags, Counter::PassedNotTcp),
        (v4(port(20), SYN | FIN, &[], &[]), Counter::PassedOtherTcp),
        (v4(port(21), SYN | RST, &[], &[]), Counter::PassedOtherTcp),
        (v4(port(22), SYN | ACK, &[], &[]), Counter::PassedOtherTcp),
        (v4(port(23), ACK, &[], &[]), Counter::AckDroppedForged),
        (v6(port(24), ACK), Counter::AckDroppedForged),
    ]
}

/// A real client's SYN is answered once, or again when it retransmits: under a flood the
/// SYN-ACK may be late or lost (it shares the veth with the flood), which is TCP's to mend.
/// Each connection still completes exactly once (`AckValidated`, `SyncookiesRecv`).
fn assert_real_syns_answered(answered: u64) {
    assert!(
        (REAL_CONNECTIONS..=2 * REAL_CONNECTIONS).contains(&answered),
        "{answered} SYN-ACKs for {REAL_CONNECTIONS} real connections"
    );
}

/// Connects `REAL_CONNECTIONS` times over both families and checks each echo.
fn real_clients(lab: &Lab) {
    run_in(&lab.client, || {
        for n in 0..REAL_CONNECTIONS {
            let address = if n % 2 == 0 {
                IpAddr::V4(SERVER_V4)
            } else {
                IpAddr::V6(SERVER_V6)
            };
            exchange(SocketAddr::new(address, PORT), b"a real client")
                .unwrap_or_else(|error| panic!("real connection {n} failed: {error:#}"));
        }
    })
    .unwrap();
}

fn nstat(bed: &Protected) -> [u64; 6] {
    [
        "TcpOutRsts",
        "TcpEstabResets",
        "TcpExtSyncookiesRecv",
        "TcpExtSyncookiesFailed",
        "TcpInCsumErrors",
        "IpExtInCsumErrors",
    ]
    .map(|name| bed.lab.nstat(&bed.lab.server, name).unwrap())
}

/// Sends `frames` from the client namespace while real clients connect, then returns the
/// counter and nstat deltas.
fn under_fire(bed: &Protected, frames: Vec<Vec<u8>>) -> (handshake::counters::Snapshot, [u64; 6]) {
    let (before, kernel_before) = (bed.handshake.counters().unwrap(), nstat(bed));
    thread::scope(|scope| {
        scope.spawn(|| send_frames(&bed.lab, frames));
        real_clients(&bed.lab);
    });
    thread::sleep(Duration::from_millis(300));
    let counted = bed.handshake.counters().unwrap().since(&before);
    let kernel_after = nstat(bed);
    let kernel = std::array::from_fn(|i| kernel_after[i] - kernel_before[i]);
    (counted, kernel)
}

#[test]
fn barrage_of_crafted_frames_while_real_clients_connect() {
    const ROUNDS: u16 = 20;
    let bed = under_a_flood();
    let cases: Vec<_> = (0..ROUNDS).flat_map(barrage_round).collect();
    let expected = |counter: Counter| cases.iter().filter(|(_, c)| *c == counter).count() as u64;
    let frames = cases.iter().map(|(frame, _)| frame.clone()).collect();
    let (counted, kernel) = under_fire(&bed, frames);

    for (counter, name, _) in ALL {
        let want = match counter {
            // Real traffic too: its SYNs, third ACKs, data, FINs, neighbour discovery.
            Counter::AckValidated => expected(counter) + REAL_CONNECTIONS,
            Counter::SynAckSent => {
                assert_real_syns_answered(counted.get(counter) - expected(counter));
                continue;
            }
            Counter::PassedEstablished => continue,
            Counter::PassedNotTcp => {
                assert!(counted.get(counter) >= expected(counter), "{name}");
                continue;
            }
            _ => expected(counter),
        };
        assert_eq!(counted.get(counter), want, "{name}");
    }
    // [OutRsts, EstabResets, SyncookiesRecv, SyncookiesFailed, InCsumErrors, IP csum]:
    // the kernel RSTs only the SYN+ACKs (tcp_rcv_state_process in LISTEN), accepts every
    // real cookie, and itself finds the bad checksums handshake passed it.
    let rounds = u64::from(ROUNDS);
    assert_eq!(
        kernel,
        [rounds, 0, REAL_CONNECTIONS, 0, rounds, rounds],
        "kernel counters"
    );
}

#[test]
fn forged_ack_flood_while_real_clients_connect() {
    const FORGED: u64 = 20_000;
    let bed = under_a_flood();
    let frames = packet::forged_acks(FORGED, PORT, (FORGER, SERVER), (FORGER6, SERVER6));
    let (counted, kernel) = under_fire(&bed, frames);
    assert_eq!(counted.get(Counter::AckDroppedForged), FORGED);
    assert_eq!(counted.get(Counter::AckValidated), REAL_CONNECTIONS);
    assert_real_syns_answered(counted.get(Counter::SynAckSent));
    // No RST, no reset, no cookie failure: the kernel never saw a forged ACK.
    assert_eq!(kernel, [0, 0, REAL_CONNECTIONS, 0, 0, 0], "kernel counters");
}
