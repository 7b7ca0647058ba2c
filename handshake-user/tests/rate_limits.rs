//! The SYN rate limits as an operator uses them: `handshake limit` on an attached
//! interface, a bounded flood of raw SYN frames from the client's namespace, real
//! connections beside it, and the SYN-ACKs counted by the program and on the client's
//! veth.
//!
//! Every bound comes from the configured rates: a bucket lets through its burst plus
//! what its rate refilled while the flood ran (`refilled`), never more.

mod common;

use std::{thread, time::Instant};

use common::{
    packet::{self, Tcp},
    pinned::{ATTACH, Bed, total},
    raw::send_frames,
};
use handshake::lab::{CLIENT_IFACE, SERVER_IFACE, SERVER_V4};

const IFACE: &str = SERVER_IFACE;
const SERVER: [u8; 4] = SERVER_V4.octets();

fn syn(source: [u8; 4], source_port: u16) -> Vec<u8> {
    let tcp = Tcp::syn(source_port, 8080, 0x0bad_cafe, &[2, 4, 0x05, 0xb4]);
    packet::ipv4(source, SERVER, &[], &tcp)
}

/// Tokens a rate of `per_second` adds in the time since `start` (rounded up), plus one
/// for the refill already under way when it began.
fn refilled(per_second: u64, start: Instant) -> u64 {
    (start.elapsed().as_secs_f64() * per_second as f64).ceil() as u64 + 1
}

/// The IPv4 SYN-ACKs the socket saw from the server's 8080 to a destination whose first
/// three bytes are `network`, read until the wire is quiet for half a second.
/// The SYN-ACKs to `network` the client's veth receives, read until none came for the
/// socket's timeout once `expected` were seen (a slow VM may hold the last ones back
/// longer: then up to 20 s in all), so that one more than expected is seen too.
fn syn_acks_to(socket: i32, network: [u8; 3], expected: u64) -> u64 {
    let mut buffer = vec![0u8; 2048];
    let mut seen = 0;
    let started = Instant::now();
    loop {
        let read = unsafe { libc::recv(socket, buffer.as_mut_ptr().cast(), buffer.len(), 0) };
        if read <= 0 {
            if seen < expected && started.elapsed() < std::time::Duration::from_secs(20) {
                continue;
            }
            break;
        }
        let frame = &buffer[..read as usize];
        if frame.len() < 14 + 20 + 20 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 6 {
            continue;
        }
        let tcp = 14 + usize::from(frame[14] & 0xf) * 4;
        if frame.len() >= tcp + 20
            && frame[14 + 12..14 + 16] == SERVER
            && frame[14 + 16..14 + 19] == network
            && frame[tcp..tcp + 2] == 8080u16.to_be_bytes()
            && frame[tcp + 13] & 0x12 == 0x12
        {
            seen += 1;
        }
    }
    let dropped = common::raw::capture_drops(socket);
    unsafe { libc::close(socket) };
    assert_eq!(
        dropped, 0,
        "the capture socket on {CLIENT_IFACE} dropped frames"
    );
    seen
}

/// What `handshake limit show` prints for the bed's interface.
fn limits_shown(bed: &Bed) -> String {
    bed.ok(&["limit", "show", "--iface", IFACE])
}

#[test]
fn a_flooding_source_is_held_to_its_rate_while_real_clients_connect() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    assert_eq!(
        bed.ok(&[
            "limit",
            "set",
            "--iface",
            IFACE,
            "--syn-per-source",
            "10/50"
        ]),
        "hs-server: rate limits SYNs per source host 10/s (burst 50)\n"
    );
    let stats = bed.stats();
    assert_eq!(
        stats["interfaces"][0]["limits"]["syn_per_source"],
        serde_json::json!({"per_second": 10, "burst": 50})
    );
    let before = bed.stats();
    // 2,000 SYNs from one host of another /24 (198.19.0.66), on distinct ports.
    const FLOOD: u64 = 2000;
    let frames: Vec<Vec<u8>> = (0..FLOOD as u16)
        .map(|n| syn([198, 19, 0, 66], 20000 + n))
        .collect();
    let start = Instant::now();
    thread::scope(|scope| {
        scope.spawn(|| send_frames(&bed.lab, frames));
        // 40 real connections (20 over each family) while it floods: every one completes.
        bed.connect(8080, 20);
    });
    let after = bed.stats();
    let limited =
        total(&after, "syn_dropped_rate_limited") - total(&before, "syn_dropped_rate_limited");
    let answered = total(&after, "syn_ack_sent") - total(&before, "syn_ack_sent");
    let most = 50 + refilled(10, start);
    // Every flood SYN is either answered (within the bucket) or limited; the 40 clients'
    // SYNs are all answered (a retransmitted one counts again, hence the range).
    assert!(
        (FLOOD - most..=FLOOD - 50).contains(&limited),
        "{limited} of {FLOOD} flood SYNs limited; the bucket lets 50 through, plus at most {} refilled",
        most - 50
    );
    let flood_answered = FLOOD - limited;
    assert!(
        answered >= flood_answered + 40,
        "{answered} SYN-ACKs: {flood_answered} to the flood and one for each of the 40 clients"
    );
    // Live: off again, and the counters stay.
    assert_eq!(
        bed.ok(&["limit", "off", "--iface", IFACE]),
        "hs-server: rate limits off\n"
    );
    assert_eq!(
        total(&bed.stats(), "syn_dropped_rate_limited"),
        total(&after, "syn_dropped_rate_limited")
    );
    assert_eq!(limits_shown(&bed), "hs-server: rate limits off\n");
}

#[test]
fn a_spoofed_flood_at_one_network_reflects_at_most_the_cap() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    bed.ok(&[
        "limit",
        "set",
        "--iface",
        IFACE,
        "--syn-acks-per-destination",
        "20/40",
    ]);
    let status = bed.ok(&["status"]);
    assert!(
        status.contains("hs-server: rate limits SYN-ACKs per destination network 20/s (burst 40)"),
        "{status}"
    );
    let socket = common::raw::listen_on_client(&bed.lab, 500_000);
    let before = bed.stats();
    // 1,000 SYNs "from" 198.19.1.0/24 (the victim's network), each from a host and port
    // of its own, as a reflection attack spoofs them.
    const FLOOD: u64 = 1000;
    let frames: Vec<Vec<u8>> = (0..FLOOD as u16)
        .map(|n| syn([198, 19, 1, 1 + (n % 250) as u8], 30000 + n))
        .collect();
    let start = Instant::now();
    send_frames(&bed.lab, frames);
    let delta =
        |now: &serde_json::Value, counter: &str| total(now, counter) - total(&before, counter);
    // The last frames may still be on their way through the veth: wait (boundedly) until
    // every one is counted.
    let mut after = bed.stats();
    for _ in 0..50 {
        if delta(&after, "syn_ack_sent") + delta(&after, "syn_dropped_reflection_cap") >= FLOOD {
            break;
        }
        thread::sleep(std::time::Duration::from_millis(100));
        after = bed.stats();
    }
    let most = 40 + refilled(20, start);
    let capped = delta(&after, "syn_dropped_reflection_cap");
    let answered = delta(&after, "syn_ack_sent");
    assert_eq!(answered + capped, FLOOD, "every flood SYN counted once");
    assert!(
        (40..=most).contains(&answered),
        "{answered} SYN-ACKs reflected at 198.19.1.0/24: the cap lets 40 through, plus at most {} refilled",
        most - 40
    );
    // What reached the victim's side of the wire is what was counted.
    let seen = syn_acks_to(socket, [198, 19, 1], answered);
    assert_eq!(seen, answered, "SYN-ACKs seen on {CLIENT_IFACE}");
    // Another network is answered; the real client connects.
    let other = bed.stats();
    send_frames(&bed.lab, vec![syn([198, 19, 2, 1], 40000)]);
    let now = bed.stats();
    assert_eq!(
        total(&now, "syn_ack_sent") - total(&other, "syn_ack_sent"),
        1
    );
    bed.connect(8080, 1);
    // Bad input: one line naming the value and the fix; nothing changes.
    assert_eq!(
        bed.error(&[
            "limit",
            "set",
            "--iface",
            IFACE,
            "--syn-acks-per-second",
            "fast"
        ]),
        "handshake: --syn-acks-per-second \"fast\" is not RATE[/BURST] with whole numbers from 1 to 100000000 (a second, and the burst above it); give e.g. --syn-acks-per-second 20/40, or --syn-acks-per-second off\n"
    );
    assert_eq!(
        limits_shown(&bed),
        "hs-server: rate limits SYN-ACKs per destination network 20/s (burst 40)\n"
    );
}

#[test]
fn limits_come_from_attach_flags_and_the_config_file() {
    let bed = Bed::new();
    let mut attach = ATTACH.to_vec();
    attach.extend(["--syn-per-source", "5/10", "--syn-acks-per-second", "1000"]);
    bed.ok(&attach);
    assert_eq!(
        limits_shown(&bed),
        "hs-server: rate limits SYNs per source host 5/s (burst 10), SYN-ACKs per second 1000/s (burst 1000)\n"
    );
    // `limit set` changes the limits it names and keeps the others.
    assert_eq!(
        bed.ok(&[
            "limit",
            "set",
            "--iface",
            IFACE,
            "--syn-per-source",
            "off",
            "--syn-per-network",
            "50/100"
        ]),
        "hs-server: rate limits SYNs per source network 50/s (burst 100), SYN-ACKs per second 1000/s (burst 1000)\n"
    );
    let status: serde_json::Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        status["interfaces"][0]["limits"],
        serde_json::json!({
            "syn_per_source": null,
            "syn_per_network": {"per_second": 50, "burst": 100},
            "syn_acks_per_second": {"per_second": 1000, "burst": 1000},
            "syn_acks_per_destination": null,
        })
    );
    assert_eq!(
        bed.error(&["limit", "set", "--iface", IFACE]),
        format!(
            "handshake: no limit given; give one or more of --syn-per-source, --syn-per-network, --syn-acks-per-second, --syn-acks-per-destination with RATE[/BURST] or `off` (e.g. `handshake --pin-dir {} limit set --iface {IFACE} --syn-per-source 20/40`)\n",
            bed.pin_dir
        )
    );
    bed.ok(&["detach", "--iface", IFACE]);
    let config = bed.config(
        "limits",
        &format!(
            "[[interface]]\nname = \"{IFACE}\"\nports = [8080]\nxdp_mode = \"native\"\nsyn_acks_per_destination = \"30/60\"\n"
        ),
    );
    bed.ok(&["attach", "--config", &config]);
    assert_eq!(
        limits_shown(&bed),
        "hs-server: rate limits SYN-ACKs per destination network 30/s (burst 60)\n"
    );
    bed.connect(8080, 2);
}
