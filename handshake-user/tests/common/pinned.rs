//! A lab for the `handshake` binary as an operator runs it, with pins: echo services on
//! 8080 and 8443 in the server namespace, the pass-through program on the client's veth,
//! and a pin folder of the lab's own.
//!
//! The binary runs through `nsenter --net` rather than `ip netns exec`, which would mount
//! a private /sys (and BPF filesystem) that vanishes with the command, taking the pins.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use handshake::{
    lab::{
        CLIENT_IFACE, Lab, SERVER_IFACE,
        echo::{EchoServer, exchange_both_families},
        run_in,
    },
    loader::PassThrough,
};
use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_handshake");

/// `attach` protecting 8080 natively on the server's veth.
pub const ATTACH: [&str; 7] = [
    "attach",
    "--iface",
    SERVER_IFACE,
    "--ports",
    "8080",
    "--xdp-mode",
    "native",
];

pub struct Bed {
    pub lab: Lab,
    pub pin_dir: String,
    /// The server namespace's folder under `pin_dir`.
    pub ns_dir: String,
    _servers: Vec<EchoServer>,
    _peer: PassThrough,
}

impl Bed {
    pub fn new() -> Self {
        super::require_root();
        let lab = Lab::create("life").unwrap();
        lab.cookies_at_xdp().unwrap();
        let servers = [8080, 8443]
            .map(|port| EchoServer::start(&lab.server, port).unwrap())
            .into();
        let peer = run_in(&lab.client, || PassThrough::attach(CLIENT_IFACE))
            .unwrap()
            .unwrap();
        let pin_dir = format!("/sys/fs/bpf/handshake-test-{}", lab.server);
        let cookie = run_in(&lab.server, handshake::interface::netns_cookie)
            .unwrap()
            .unwrap();
        Self {
            ns_dir: format!("{pin_dir}/netns-{cookie}"),
            lab,
            pin_dir,
            _servers: servers,
            _peer: peer,
        }
    }

    /// `handshake --pin-dir PIN_DIR ARGS` in namespace `ns`.
    pub fn command_in(&self, ns: &str, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{ns}"))
            .args([BINARY, "--pin-dir", &self.pin_dir])
            .args(args);
        command
    }

    /// `handshake --pin-dir PIN_DIR ARGS` in the server's network namespace.
    pub fn command_with(&self, pin_dir: &str, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/run/netns/{}", self.lab.server))
            .args([BINARY, "--pin-dir", pin_dir])
            .args(args);
        command
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with(&self.pin_dir, args)
    }

    pub fn handshake(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.handshake(args), args)
    }

    pub fn error(&self, args: &[&str]) -> String {
        error(self.handshake(args), args)
    }

    pub fn stats(&self) -> Value {
        serde_json::from_str(&self.ok(&["stats", "--json", "--iface", SERVER_IFACE])).unwrap()
    }

    pub fn connect(&self, port: u16, count: u32) {
        run_in(&self.lab.client, move || {
            exchange_both_families(port, count)
        })
        .unwrap()
        .unwrap();
    }

    pub fn xdp_attached(&self) -> bool {
        self.xdp_on(SERVER_IFACE)
    }

    pub fn xdp_on(&self, iface: &str) -> bool {
        self.lab
            .output(&self.lab.server, &["ip", "link", "show", iface])
            .unwrap()
            .contains("xdp")
    }

    /// A second interface in the server namespace: a veth pair with both ends there.
    pub fn add_veth(&self, name: &str) {
        self.add_veth_in(&self.lab.server, name);
    }

    /// A veth pair NAME, NAME-p with both ends in namespace `ns`, up.
    pub fn add_veth_in(&self, ns: &str, name: &str) {
        let peer = format!("{name}-p");
        let add = [
            "ip", "link", "add", name, "type", "veth", "peer", "name", &peer,
        ];
        self.lab.exec(ns, &add).unwrap();
        self.lab
            .exec(ns, &["ip", "link", "set", name, "up"])
            .unwrap();
    }

    /// `handshake run` protecting 8080 natively on the server's veth, with `extra`
    /// options; stdout and stderr piped.
    pub fn run(&self, extra: &[&str]) -> Child {
        let mut args = vec!["run"];
        args.extend_from_slice(&ATTACH[1..]);
        args.extend_from_slice(extra);
        self.command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Bed {
    /// Writes a config file named after the lab and `tag`; returns its path.
    pub fn config(&self, tag: &str, text: &str) -> String {
        let path = std::env::temp_dir().join(format!("{}-{tag}.toml", self.lab.server));
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// Standard output of a command that must succeed.
pub fn ok(output: Output, what: &[&str]) -> String {
    assert!(
        output.status.success(),
        "handshake {what:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Standard error of a command that must fail with exit code 1 and print nothing else.
pub fn error(output: Output, what: &[&str]) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "handshake {what:?} should fail; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "",
        "handshake {what:?} failed but printed as if something was done"
    );
    String::from_utf8(output.stderr).unwrap()
}

pub fn total(stats: &Value, counter: &str) -> u64 {
    stats["interfaces"][0]["counters"][counter]["total"]
        .as_u64()
        .unwrap()
}

pub fn port_total(stats: &Value, port: u16, counter: &str) -> Option<u64> {
    let ports = stats["interfaces"][0]["ports"].as_array().unwrap();
    ports
        .iter()
        .find(|entry| entry["port"] == port)
        .map(|entry| entry[counter]["total"].as_u64().unwrap())
}

/// Scrapes http://127.0.0.1:PORT/metrics inside the server namespace.
pub fn scrape(lab: &Lab, port: u16) -> String {
    run_in(&lab.server, move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => break stream,
                Err(error) if Instant::now() > deadline => {
                    panic!("metrics endpoint never came up: {error}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .unwrap()
}

pub fn sigterm(child: &mut Child) {
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

/// Lines of a child's stdout or stderr, as they come.
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    lines
}

/// Waits for `line` among `lines`, for at most 10 s.
pub fn expect_line(lines: &mpsc::Receiver<String>, line: &str) {
    expect_line_where(lines, &format!("{line:?}"), |got| got == line);
}

/// Waits for a line `matches` among `lines` (`what` names it), for at most 10 s.
pub fn expect_line_where(
    lines: &mpsc::Receiver<String>,
    what: &str,
    matches: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(got) if matches(&got) => return,
            Ok(got) => seen.push(got),
            Err(_) => {}
        }
    }
    panic!("no line {what} within 10 s; saw {seen:?}");
}
