//! `handshake capture` and `handshake top` on a real attachment: sampled frames in a pcap
//! file (read back here, by a reader of the test's own), the top sources and ports of a
//! known traffic mix, and sampling off again however the command ends.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
};

use common::{
    packet::{self, ACK, SYN, Tcp},
    pinned::{ATTACH, Bed, expect_line_where, lines_of, sigterm},
    raw,
};
use handshake::{
    lab::{CLIENT_V4, CLIENT_V6, SERVER_IFACE, SERVER_V4, SERVER_V6},
    maps::Maps,
};
use handshake_common::config::Config;

const PORT: u16 = 8080;

/// The pinned CONFIG of the lab's attachment.
fn config(bed: &Bed) -> Config {
    maps(bed).config().unwrap()
}

fn maps(bed: &Bed) -> Maps {
    Maps::from_pins(&Path::new(&bed.ns_dir).join(SERVER_IFACE)).unwrap()
}

/// Attached, with every ACK without a valid cookie dropped as forged (a flood state).
fn attached() -> Bed {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    let mut maps = maps(&bed);
    let mut config = maps.config().unwrap();
    config.flood_syn_acks = 0;
    maps.set_config(&config).unwrap();
    bed
}

fn pcap_path(bed: &Bed, tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{tag}.pcap", bed.lab.server))
}

/// Starts `handshake ARGS` with its output piped and waits until it samples.
fn start(bed: &Bed, args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = bed
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    expect_line_where(&stderr, "sampling started", |line| {
        line.starts_with("handshake: hs-server: capturing")
            || line.starts_with("handshake: hs-server: top")
    });
    (child, stderr)
}

fn finished(child: Child) -> String {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn assert_sampling_off(bed: &Bed) {
    let config = config(bed);
    assert_eq!(
        (
            config.sample_counters,
            config.sample_every,
            config.sample_owner
        ),
        (0, 0, 0)
    );
}

/// One record of a classic pcap file: its timestamp is not checked (wall clock).
#[derive(Debug, PartialEq)]
struct Record {
    len: u32,
    data: Vec<u8>,
}

/// The records of a classic little-endian, nanosecond pcap file of Ethernet frames.
fn read_pcap(path: &Path) -> Vec<Record> {
    let bytes = std::fs::read(path).unwrap();
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(word(0), 0xa1b2_3c4d, "magic: nanosecond timestamps");
    assert_eq!(&bytes[4..8], &[2, 0, 4, 0], "version 2.4");
    assert_eq!(word(16), 128, "snaplen");
    assert_eq!(word(20), 1, "LINKTYPE_ETHERNET");
    let mut records = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let (included, len) = (word(at + 8) as usize, word(at + 12));
        assert!(word(at + 4) < 1_000_000_000, "nanoseconds");
        records.push(Record {
            len,
            data: bytes[at + 16..at + 16 + included].to_vec(),
        });
        at += 16 + included;
    }
    assert_eq!(at, bytes.len());
    records
}

/// TCP flags of an untagged IPv4 or IPv6 frame without extension headers.
fn tcp_flags(frame: &[u8]) -> u8 {
    match frame[12..14] {
        [0x08, 0x00] => frame[14 + usize::from(frame[14] & 0x0f) * 4 + 13],
        _ => frame[54 + 13],
    }
}

/// The server veth's MAC, which `raw::send_frames` writes into every frame.
fn server_mac(bed: &Bed) -> Vec<u8> {
    let text = bed
        .lab
        .output(
            &bed.lab.server,
            &["cat", &format!("/sys/class/net/{SERVER_IFACE}/address")],
        )
        .unwrap();
    text.trim()
        .split(':')
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect()
}

fn forged_acks(count: u64) -> Vec<Vec<u8>> {
    packet::forged_acks(
        count,
        PORT,
        (CLIENT_V4.octets(), SERVER_V4.octets()),
        (CLIENT_V6.octets(), SERVER_V6.octets()),
    )
}

#[test]
fn capture_writes_the_answered_syns_and_forged_acks_as_pcap_and_stops_sampling() {
    let bed = attached();
    let path = pcap_path(&bed, "capture");
    let file = path.to_str().unwrap();
    let args = [
        "capture",
        "--iface",
        SERVER_IFACE,
        "--verdict",
        "answered,forged",
        "--count",
        "6",
        "-w",
        file,
    ];
    let (child, _stderr) = start(&bed, &args);
    let on = config(&bed);
    assert_eq!(on.sample_counters, (1 << 0) | (1 << 10));
    assert_eq!(on.sample_every, 1);
    assert_eq!(on.sample_owner, child.id());

    // Two connections over each family: four SYNs answered (sampled as their SYN-ACKs),
    // then two forged ACKs, one of each family.
    bed.connect(PORT, 2);
    let forged = forged_acks(2);
    raw::send_frames(&bed.lab, forged.clone());

    assert_eq!(
        finished(child),
        format!(
            "hs-server: wrote 6 frames to {file} (syn_ack_sent 4, ack_dropped_forged 2); sampling is off\n"
        )
    );
    assert_sampling_off(&bed);

    let records = read_pcap(&path);
    assert_eq!(records.len(), 6);
    let syn_acks: Vec<&Record> = records
        .iter()
        .filter(|record| tcp_flags(&record.data) == SYN | ACK)
        .collect();
    assert_eq!(syn_acks.len(), 4);
    assert!(
        syn_acks
            .iter()
            .all(|record| record.data.len() as u32 == record.len)
    );
    // The forged ACKs exactly as they were sent (to the server's MAC), whole: shorter
    // than the 128 bytes a sample holds.
    let mac = server_mac(&bed);
    let expected: Vec<Record> = forged
        .into_iter()
        .map(|mut frame| {
            frame[..6].copy_from_slice(&mac);
            Record {
                len: frame.len() as u32,
                data: frame,
            }
        })
        .collect();
    assert_eq!(&records[4..], &expected[..]);
    // And tcpdump reads the file: one line per frame, the SYN-ACKs first.
    let read = std::process::Command::new("tcpdump")
        .args(["-n", "-r", file])
        .output()
        .unwrap();
    assert!(read.status.success(), "{read:?}");
    let flags: Vec<&str> = std::str::from_utf8(&read.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            line.split("Flags ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(flags, ["[S.]", "[S.]", "[S.]", "[S.]", "[.]", "[.]"]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn sampling_ends_with_sigterm_and_a_killed_capture_is_reported_and_stopped() {
    let bed = attached();
    let path = pcap_path(&bed, "signals");
    let file = path.to_str().unwrap();
    let args = [
        "capture",
        "--iface",
        SERVER_IFACE,
        "--seconds",
        "600",
        "-w",
        file,
    ];

    let (mut child, _stderr) = start(&bed, &args);
    let pid = child.id();
    assert_eq!(config(&bed).sample_counters, u64::MAX);
    assert!(bed.ok(&["status"]).contains(&format!(
        "hs-server: SAMPLING packets for a capture or top (pid {pid})\n"
    )));
    sigterm(&mut child);
    assert_eq!(
        finished(child),
        format!("hs-server: wrote 0 frames to {file}; sampling is off\n")
    );
    assert_sampling_off(&bed);
    assert_eq!(read_pcap(&path), Vec::new());

    // SIGKILL leaves sampling on: status says so, and `capture --stop` turns it off.
    let (mut child, _stderr) = start(&bed, &args);
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(config(&bed).sample_owner, pid);
    let handshake = format!("handshake --pin-dir {}", bed.pin_dir);
    assert!(bed.ok(&["status"]).contains(&format!(
        "hs-server: SAMPLING LEFT ON by a capture that is gone (pid {pid}, killed?): each sampled frame costs the program about 5 helper calls; `{handshake} capture --iface hs-server --stop` turns it off\n"
    )));
    let json: serde_json::Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        json["interfaces"][0]["sampling"],
        serde_json::json!({"pid": pid, "running": false})
    );
    assert_eq!(
        bed.ok(&["capture", "--iface", SERVER_IFACE, "--stop"]),
        format!("hs-server: sampling is off (a capture that is gone, pid {pid}, had left it on)\n")
    );
    assert_sampling_off(&bed);
    assert_eq!(
        bed.ok(&["capture", "--iface", SERVER_IFACE, "--stop"]),
        "hs-server: sampling is off; nothing to stop\n"
    );

    // Or the next capture takes it over, and turns it off when it ends.
    let (mut child, _stderr) = start(&bed, &args);
    let killed = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut next = bed
        .command(&[
            "capture",
            "--iface",
            SERVER_IFACE,
            "--seconds",
            "0.2",
            "-w",
            file,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(next.stderr.take().unwrap());
    expect_line_where(&stderr, "the take-over warning", |line| {
        line == format!(
            "handshake: warning: hs-server: sampling was left on by a capture that is gone (pid {killed}, killed?); this one takes it over"
        )
    });
    finished(next);
    assert_sampling_off(&bed);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn top_names_the_sources_and_ports_of_a_traffic_mix() {
    let bed = attached();
    bed.ok(&["deny", "add", "--iface", SERVER_IFACE, "198.18.200.0/24"]);
    let (child, _stderr) = start(
        &bed,
        &[
            "top",
            "--iface",
            SERVER_IFACE,
            "--seconds",
            "5",
            "--window",
            "60",
        ],
    );
    // Four SYNs answered (two per family), three SYNs from a denied source, four forged
    // ACKs (two per family).
    bed.connect(PORT, 2);
    let denied: Vec<Vec<u8>> = (0..3)
        .map(|n| {
            let tcp = Tcp::syn(50000 + n, PORT, 7, &[]);
            packet::ipv4([198, 18, 200, 7], SERVER_V4.octets(), &[], &tcp)
        })
        .collect();
    raw::send_frames(&bed.lab, denied);
    raw::send_frames(&bed.lab, forged_acks(4));

    let output = finished(child);
    assert_sampling_off(&bed);
    let last = output.trim_end().rsplit("\n\n").next().unwrap();
    let mut lines = last.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("hs-server: top of the last ")
            && header.ends_with(" s, every frame sampled"),
        "{header}"
    );
    let row = |key: &str, count: u64| format!("  {key:<44}{count:>10}");
    let expected = [
        "SYNs answered: 4".to_owned(),
        row("source", 0).replace("         0", "   samples"),
        row("198.18.0.0/24", 2),
        row("2001:2::/48", 2),
        row("port", 0).replace("         0", "   samples"),
        row("8080", 4),
        "SYNs dropped: 3".to_owned(),
        row("source", 0).replace("         0", "   samples"),
        row("198.18.200.0/24", 3),
        row("port", 0).replace("         0", "   samples"),
        row("8080", 3),
        "forged ACKs: 4".to_owned(),
        row("source", 0).replace("         0", "   samples"),
        row("198.18.0.0/24", 2),
        row("2001:2::/48", 2),
        row("port", 0).replace("         0", "   samples"),
        row("8080", 4),
    ];
    assert_eq!(lines.collect::<Vec<_>>(), expected, "{output}");
}

#[test]
fn pins_of_a_build_without_samples_still_open_and_capture_says_why() {
    let bed = attached();
    std::fs::remove_file(Path::new(&bed.ns_dir).join(SERVER_IFACE).join("SAMPLES")).unwrap();
    assert!(
        bed.ok(&["status"])
            .starts_with("hs-server: native XDP, ports 8080, program id "),
        "pins without SAMPLES are still an attachment (and `attach` upgrades them in place)"
    );
    let path = pcap_path(&bed, "old-pins");
    assert_eq!(
        bed.error(&[
            "capture",
            "--iface",
            SERVER_IFACE,
            "-w",
            path.to_str().unwrap()
        ]),
        "handshake: no SAMPLES ring buffer: it was attached by a build of handshake without packet samples; attach this build to sample\n"
    );
    assert_sampling_off(&bed);
    let _ = std::fs::remove_file(&path);
}
