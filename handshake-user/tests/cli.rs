//! The `handshake` binary as an operator runs it: `run` protects until SIGTERM and then
//! detaches; bad input gets one clear sentence and leaves the interface as it was.

mod common;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use handshake::lab::{
    CLIENT_IFACE, Lab, SERVER_IFACE,
    echo::{EchoServer, exchange_both_families},
    run_in,
};

const BINARY: &str = env!("CARGO_BIN_EXE_handshake");
const PORT: u16 = 8080;

fn handshake_in(lab: &Lab, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &lab.server, BINARY])
        .args(args);
    command
}

fn xdp_attached(lab: &Lab) -> bool {
    lab.output(&lab.server, &["ip", "link", "show", SERVER_IFACE])
        .unwrap()
        .contains("xdp")
}

#[test]
fn run_protects_until_sigterm_then_detaches() {
    common::require_root();
    let lab = Lab::create("cli").unwrap();
    lab.cookies_at_xdp().unwrap();
    let _server = EchoServer::start(&lab.server, PORT).unwrap();
    let _peer = run_in(&lab.client, || {
        handshake::loader::PassThrough::attach(CLIENT_IFACE)
    })
    .unwrap()
    .unwrap();

    let mut child = handshake_in(
        &lab,
        &[
            "run",
            "--iface",
            SERVER_IFACE,
            "--ports",
            "8080",
            "--xdp-mode",
            "native",
            "--interval",
            "0.2",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|line: &String| line.starts_with("handshake protects"))
    {
        seen.push(
            lines
                .recv_timeout(Duration::from_secs(10))
                .expect("`handshake run` printed no start line"),
        );
    }
    assert!(
        seen.contains(
            &"tcp_syncookies=2: every SYN to a protected port is answered at XDP with a cookie"
                .to_owned()
        ),
        "{seen:?}"
    );
    assert_eq!(
        seen.last().unwrap(),
        "handshake protects TCP ports 8080 on hs-server (native XDP); Ctrl-C or SIGTERM detaches"
    );
    assert!(xdp_attached(&lab));

    run_in(&lab.client, || exchange_both_families(PORT, 5))
        .unwrap()
        .unwrap();
    // A table every interval: wait for the first one (however slow the machine), then stop.
    let mut tables: Vec<String> = Vec::new();
    while !tables.iter().any(|line| line.starts_with("counter ")) {
        tables.push(
            lines
                .recv_timeout(Duration::from_secs(10))
                .expect("`handshake run` printed no table"),
        );
    }
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "`handshake run` exited with {status} on SIGTERM"
    );
    let rest: Vec<String> = lines.try_iter().collect();
    let totals = rest
        .iter()
        .position(|line| line.starts_with("detached from hs-server"))
        .expect("no detach line");
    let syn_acks = rest[totals..]
        .iter()
        .find(|line| line.starts_with("syn_ack_sent"))
        .unwrap();
    assert_eq!(syn_acks.split_whitespace().nth(1), Some("10"), "{syn_acks}");
    assert!(!xdp_attached(&lab), "XDP is still attached after SIGTERM");
}

fn stderr_of(output: Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn bad_input_is_named_and_changes_nothing() {
    common::require_root();
    let lab = Lab::create("cli-errors").unwrap();
    let run = |args: &[&str]| stderr_of(handshake_in(&lab, args).output().unwrap());

    assert_eq!(
        run(&["run", "--iface", "nosuch0", "--ports", "80"]),
        "handshake: interface nosuch0 not found; `ip link` lists interfaces\n"
    );
    assert_eq!(
        run(&["run", "--iface", SERVER_IFACE, "--ports", "80,0"]),
        "handshake: --ports \"80,0\": port 0 is out of range; TCP ports are 1 to 65535\n"
    );
    assert_eq!(
        run(&["run", "--iface", SERVER_IFACE, "--ports", "443,443"]),
        "handshake: --ports \"443,443\": port 443 appears twice; list each port once\n"
    );
    assert_eq!(
        run(&[
            "run",
            "--iface",
            SERVER_IFACE,
            "--ports",
            "80",
            "--mss",
            "9000"
        ]),
        "handshake: --mss 9000 does not fit hs-server's MTU of 1500 (at most 1460); give a smaller --mss or raise the MTU\n"
    );
    // A fresh namespace has tcp_timestamps=1.
    assert!(
        run(&[
            "run",
            "--iface",
            SERVER_IFACE,
            "--ports",
            "80",
            "--timestamps"
        ])
        .starts_with("handshake: --timestamps needs net.ipv4.tcp_timestamps=2 (it is 1)"),
    );
    let unprivileged = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.server,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BINARY,
        ])
        .args(["run", "--iface", SERVER_IFACE, "--ports", "80"])
        .output()
        .unwrap();
    assert!(
        stderr_of(unprivileged).starts_with("handshake: permission denied: loading and attaching XDP needs CAP_BPF and CAP_NET_ADMIN (effective capabilities: 0x0)"),
    );
    assert!(
        !xdp_attached(&lab),
        "a refused run must leave the interface untouched"
    );
}

#[test]
fn every_option_has_help() {
    for (command, option, help) in [
        ("run", "--iface", "The interface the SYNs arrive on"),
        ("attach", "--ports", "80,443,8000-8010"),
        ("detach", "--iface", "The interface `attach` protects"),
        ("stats", "--iface", "Only this interface"),
        ("status", "--json", "Machine-readable output"),
        (
            "metrics",
            "--listen",
            "Where to serve http://ADDR:PORT/metrics",
        ),
    ] {
        let output = Command::new(BINARY)
            .args([command, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let described = text
            .split("\n  -")
            .find(|entry| entry.contains(option))
            .unwrap_or_else(|| panic!("`{command} --help` lists no {option}:\n{text}"));
        assert!(
            described.contains(help),
            "`{command} --help` describes {option} as {described:?}"
        );
    }
}
