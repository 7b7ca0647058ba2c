//! A short, bounded SYN flood while real clients connect, with handshake on the server's
//! veth and `tcp_syncookies=2`: every legitimate connection must complete, every flood SYN
//! that reached the server must be answered by handshake, and the kernel must send no
//! SYN-ACK of its own.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use handshake::lab::{
    Lab, SERVER_V4,
    echo::{self, EchoServer},
    run_in,
};
use handshake_bench::flood::{self, Flood, Sink};
use handshake_common::counters::Counter;

const PORT: u16 = 8080;
const FLOOD_SYNS: u64 = 30_000;
const FLOOD_RATE: u64 = 15_000;
const CONNECTIONS: u64 = 40;

#[test]
fn legitimate_connections_complete_during_a_flood_answered_only_by_handshake() {
    // Fails loudly rather than skips: see handshake-user's tests/common/mod.rs.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the flood test attaches XDP programs and creates network namespaces: run it as root (`sudo -E cargo xtask test`)"
    );
    let lab = Lab::create("flood").unwrap();
    lab.cookies_at_xdp().unwrap();
    flood::route_spoofed_sources(&lab).unwrap();
    let _server = EchoServer::start(&lab.server, PORT).unwrap();
    let sink = Sink::attach(&lab).unwrap();
    let (handshake, _) = lab.attach_handshake(PORT, false).unwrap();

    let flood = Flood {
        port: PORT,
        rate: Some(FLOOD_RATE),
        packets: FLOOD_SYNS,
        // A bound, not the expected length (2 s at the rate): a kernel in a software-emulated
        // VM sends only about 6k SYNs/s, and the flood must still finish whole.
        duration: Duration::from_secs(20),
        stop: Arc::new(AtomicBool::new(false)),
    };
    let (report, connected) = std::thread::scope(|scope| {
        let flooding = scope.spawn(|| flood::send(&lab, flood).unwrap());
        let server = SocketAddr::new(SERVER_V4.into(), PORT);
        let connected = run_in(&lab.client, move || {
            let mut connected = 0u64;
            for n in 0..CONNECTIONS {
                // Spread the connections over the flood.
                std::thread::sleep(Duration::from_millis(40));
                // No clock here: a SYN the server missed would be sent again, and the exact
                // SYN count below would tell.
                echo::exchange(server, format!("hello {n}\n").as_bytes()).unwrap();
                connected += 1;
            }
            connected
        })
        .unwrap();
        (flooding.join().unwrap(), connected)
    });
    // What is in flight on the veths arrives within milliseconds.
    std::thread::sleep(Duration::from_millis(300));

    assert_eq!(connected, CONNECTIONS);
    assert_eq!(report.sent, FLOOD_SYNS, "the flood ended early: {report:?}");
    let counted = handshake.counters().unwrap();
    // Every SYN that reached the server (the flood's and one per real connection) was
    // answered at XDP, none passed to the kernel.
    assert_eq!(
        counted.syns(),
        FLOOD_SYNS + CONNECTIONS,
        "SYNs that reached the server"
    );
    assert_eq!(counted.get(Counter::SynAckSent), counted.syns());
    // At least one validated ACK per connection: a connection's first data segment can
    // reach XDP before the kernel has turned its third ACK into a socket, and it carries
    // the same valid cookie.
    assert!(counted.get(Counter::AckValidated) >= CONNECTIONS);
    // Every answer to a spoofed source came back to the sink, and nothing else did.
    let returned = sink.returned().unwrap();
    assert_eq!(
        returned.syn_acks, FLOOD_SYNS,
        "SYN-ACKs back at the generator"
    );
    assert_eq!(returned.resets, 0);
    // The kernel sent no cookie SYN-ACK of its own, yet accepted every real connection's.
    assert_eq!(lab.nstat(&lab.server, "TcpExtSyncookiesSent").unwrap(), 0);
    assert_eq!(
        lab.nstat(&lab.server, "TcpExtSyncookiesRecv").unwrap(),
        CONNECTIONS
    );
}
