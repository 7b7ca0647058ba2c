//! The operator's tool tells the truth: state is read from the kernel (an interface
//! recreated or deleted, another namespace, `handshake run`), `ip netns exec` is refused,
//! a reader that goes away stops output and never protection, refusals print nothing as
//! done, the metrics server serves every client at once, and concurrent calls take turns.

mod common;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpStream,
    os::unix::process::ExitStatusExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use common::pinned::{ATTACH, BINARY, Bed, error, ok, scrape, total};
use handshake::{
    lab::{SERVER_IFACE, netns::spawn_in, run_in},
    loader::PassThrough,
};
use serde_json::Value;

fn sigterm(child: &mut Child) {
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
}

#[test]
fn a_recreated_interface_is_reported_and_attach_replaces_the_dead_pins() {
    let bed = Bed::new();
    bed.add_veth("hs-extra");
    bed.ok(&ATTACH);
    let extra = [
        "attach",
        "--iface",
        "hs-extra",
        "--ports",
        "443",
        "--xdp-mode",
        "generic",
    ];
    bed.ok(&extra);
    let server = bed.lab.server.clone();
    bed.lab
        .exec(&server, &["ip", "link", "del", "hs-extra"])
        .unwrap();
    bed.add_veth("hs-extra");

    let handshake = format!("handshake --pin-dir {}", bed.pin_dir);
    let gone = format!(
        "hs-extra was recreated or its XDP link was detached (it runs no XDP program): protection is gone; run `{handshake} attach --iface hs-extra --ports 443` again (it replaces these pins), or `{handshake} detach --iface hs-extra` to remove them"
    );
    let status = bed.ok(&["status"]);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[0], format!("hs-extra: NOT PROTECTED: {gone}"));
    assert!(
        lines[1].starts_with("hs-server: native XDP, ports 8080, program id "),
        "{status}"
    );
    let json: Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    let interfaces = json["interfaces"].as_array().unwrap();
    assert_eq!(interfaces[0]["iface"], "hs-extra");
    assert_eq!(interfaces[0]["protected"], false);
    assert_eq!(interfaces[0]["problem"], gone.as_str());
    assert_eq!(interfaces[1]["iface"], "hs-server");
    assert_eq!(interfaces[1]["protected"], true);
    assert_eq!(interfaces[1]["by"], "attach");
    assert_eq!(interfaces[1]["xdp_mode"], "native");
    assert_eq!(interfaces[1]["ports"], serde_json::json!([8080]));
    assert_eq!(json["pin_dir"], bed.ns_dir.as_str());

    // Nothing that needs the attachment pretends it is there.
    let refused = format!("handshake: {gone}\n");
    assert_eq!(
        bed.error(&["ports", "add", "--iface", "hs-extra", "8443"]),
        refused
    );
    assert_eq!(bed.error(&["stats", "--iface", "hs-extra"]), refused);
    let all = bed.handshake(&["stats", "--json"]);
    assert!(all.status.success());
    assert_eq!(
        String::from_utf8(all.stderr).unwrap(),
        format!("handshake: warning: hs-extra: NOT PROTECTED: {gone}\n")
    );
    let stats: Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(stats["interfaces"].as_array().unwrap().len(), 1);
    assert_eq!(stats["interfaces"][0]["iface"], "hs-server");
    let mut metrics = bed
        .command(&["metrics", "--listen", "127.0.0.1:9722"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let response = scrape(&bed.lab, 9722);
    metrics.kill().unwrap();
    metrics.wait().unwrap();
    assert!(
        response.contains("handshake_protected{iface=\"hs-extra\"} 0\n"),
        "{response}"
    );
    assert!(response.contains("handshake_protected{iface=\"hs-server\"} 1\n"));
    assert!(!response.contains("iface=\"hs-extra\",port"), "{response}");

    // `attach` over the dead pins replaces them.
    let output = bed.handshake(&extra);
    assert!(output.status.success());
    let warning = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        warning,
        format!(
            "handshake: warning: replacing the pins in {}/hs-extra: {gone}\n",
            bed.ns_dir
        )
    );
    assert!(bed.xdp_on("hs-extra"));
    assert!(
        bed.ok(&["status"])
            .starts_with("hs-extra: generic XDP, ports 443, program id ")
    );

    // Deleted: said so, and detach removes the pins, saying they protected nothing.
    bed.lab
        .exec(&server, &["ip", "link", "del", "hs-extra"])
        .unwrap();
    let deleted = format!(
        "hs-extra is gone from this network namespace: protection is gone; when it is back, run `{handshake} attach --iface hs-extra --ports 443` again"
    );
    assert!(
        bed.ok(&["status"])
            .starts_with(&format!("hs-extra: NOT PROTECTED: {deleted}")),
    );
    assert!(
        bed.ok(&["detach", "--iface", "hs-extra"])
            .starts_with(&format!(
                "removed the pins of hs-extra, which protected nothing any more ({deleted}"
            ))
    );
    bed.connect(8080, 2);
    assert_eq!(total(&bed.stats(), "syn_ack_sent"), 4);
}

#[test]
fn pins_belong_to_their_network_namespace() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    // The client namespace gets an unprotected interface of the same name.
    bed.add_veth_in(&bed.lab.client, SERVER_IFACE);
    let in_client = |args: &[&str]| bed.command_in(&bed.lab.client, args).output().unwrap();
    let status = ok(in_client(&["status"]), &["status"]);
    assert!(
        status.starts_with(&format!(
            "handshake protects nothing in this network namespace (no attachments in {}/netns-",
            bed.pin_dir
        )),
        "{status}"
    );
    for args in [
        &["ports", "add", "--iface", SERVER_IFACE, "9999"][..],
        &["detach", "--iface", SERVER_IFACE],
        &["stats", "--iface", SERVER_IFACE],
    ] {
        let refused = error(in_client(args), args);
        assert!(
            refused.starts_with("handshake: handshake is not attached to hs-server (no "),
            "{refused}"
        );
    }
    let nothing = error(in_client(&["stats"]), &["stats"]);
    assert!(
        nothing.starts_with("handshake: handshake protects nothing in this network namespace"),
        "{nothing}"
    );
    // The server's protection is untouched.
    assert_eq!(
        bed.ok(&["ports", "list", "--iface", SERVER_IFACE]),
        "hs-server: protected ports 8080\n"
    );
    bed.connect(8080, 2);
    assert_eq!(total(&bed.stats(), "syn_ack_sent"), 4);
}

#[test]
fn ip_netns_exec_is_refused_with_the_nsenter_command() {
    let bed = Bed::new();
    let ns = &bed.lab.server;
    for args in [
        &["attach", "--iface", SERVER_IFACE, "--ports", "8080"][..],
        &["status"],
        &["ports", "list", "--iface", SERVER_IFACE],
    ] {
        let output = Command::new("ip")
            .args(["netns", "exec", ns, BINARY, "--pin-dir", &bed.pin_dir])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            error(output, args),
            format!(
                "handshake: this process runs under `ip netns exec {ns}`, which gives it a private /sys: pins made here vanish when it exits and the host's pins are not visible; nothing changed. Run `nsenter --net=/run/netns/{ns} handshake ...` instead\n"
            )
        );
    }
    assert!(!bed.xdp_attached());
}

#[test]
fn intervals_and_addresses_are_validated() {
    for bad in ["0", "nan", "inf", "1e30", "0.01", "soon"] {
        let args = ["run", "--iface", "lo", "--ports", "80", "--interval", bad];
        let output = Command::new(BINARY).args(args).output().unwrap();
        assert_eq!(
            error(output, &args),
            format!(
                "handshake: --interval {bad:?} is not a number of seconds from 0.1 to 3600; give e.g. --interval 1\n"
            )
        );
    }
    let args = ["run", "--iface", "lo", "--ports", "80", "--metrics", "9720"];
    assert_eq!(
        error(Command::new(BINARY).args(args).output().unwrap(), &args),
        "handshake: --metrics \"9720\" is not ADDR:PORT; give e.g. --metrics 127.0.0.1:9720\n"
    );
    let args = ["run", "--iface", "lo", "--ports", "1-2000"];
    assert_eq!(
        error(Command::new(BINARY).args(args).output().unwrap(), &args),
        "handshake: --ports \"1-2000\": more than 1024 ports; handshake protects at most 1024 per interface\n"
    );
}

/// Lines of a child's stdout or stderr, as they come.
fn lines_of(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    lines
}

/// Waits for `line` among `lines`, for at most 10 s.
fn expect_line(lines: &mpsc::Receiver<String>, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(got) if got == line => return,
            Ok(got) => seen.push(got),
            Err(_) => {}
        }
    }
    panic!("no line {line:?} within 10 s; saw {seen:?}");
}

#[test]
fn a_reader_that_goes_away_ends_output_never_protection() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    // `handshake stats --watch | head -1`
    let mut stats = bed
        .command(&["stats", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(stats.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert_eq!(first, "hs-server\n", "no screen escapes into a pipe");
    drop(reader);
    let output = stats.wait_with_output().unwrap();
    assert_eq!(output.status.signal(), Some(libc::SIGPIPE), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    bed.ok(&["detach", "--iface", SERVER_IFACE]);

    // `handshake run ... | head -2`
    let mut run = bed.run(&["--interval", "0.1"]);
    let mut reader = BufReader::new(run.stdout.take().unwrap());
    for _ in 0..2 {
        reader.read_line(&mut String::new()).unwrap();
    }
    drop(reader);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        run.try_wait().unwrap().is_none(),
        "`handshake run` exited when its reader went away"
    );
    assert!(bed.xdp_attached());
    bed.connect(8080, 2);

    // What `run` protects is shown, and not mistaken for pins.
    let status = bed.ok(&["status"]);
    assert!(
        status.starts_with("hs-server: protected by `handshake run` (program id "),
        "{status}"
    );
    assert!(
        status
            .lines()
            .next()
            .unwrap()
            .ends_with("), not pinned: it stops with that process")
    );
    let refused = bed.error(&["stats", "--iface", SERVER_IFACE]);
    assert!(
        refused.starts_with("handshake: hs-server is protected by `handshake run` (program id "),
        "{refused}"
    );
    let refused = bed.error(&ATTACH);
    assert!(
        refused.starts_with("handshake: handshake already protects hs-server (program id "),
        "{refused}"
    );

    sigterm(&mut run);
    let output = run.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(!bed.xdp_attached());
}

#[test]
fn without_privileges_every_command_says_permission_denied() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    for args in [
        &["status"][..],
        &["ports", "list", "--iface", SERVER_IFACE],
        &["ports", "add", "--iface", SERVER_IFACE, "9000"],
        &["detach", "--iface", SERVER_IFACE],
        &["stats"],
        &["metrics", "--listen", "127.0.0.1:9723"],
    ] {
        let output = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", bed.lab.server))
            .args([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                BINARY,
                "--pin-dir",
                &bed.pin_dir,
            ])
            .args(args)
            .output()
            .unwrap();
        let refused = error(output, args);
        assert!(
            refused.starts_with("handshake: permission denied: "),
            "{args:?}: {refused}"
        );
    }
    assert_eq!(
        bed.ok(&["ports", "list", "--iface", SERVER_IFACE]),
        "hs-server: protected ports 8080\n"
    );
}

#[test]
fn a_config_whose_second_interface_fails_prints_and_keeps_nothing() {
    let bed = Bed::new();
    bed.add_veth("hs-extra");
    let _foreign = run_in(&bed.lab.server, || PassThrough::attach("hs-extra"))
        .unwrap()
        .unwrap();
    let config = bed.config(
        "config",
        "[[interface]]\nname = \"hs-server\"\nports = [8080]\nxdp_mode = \"native\"\n\n[[interface]]\nname = \"hs-extra\"\nports = [\"443,8000-8001\"]\n",
    );
    let refused = bed.error(&["attach", "--config", &config]);
    std::fs::remove_file(&config).unwrap();
    assert!(
        refused.starts_with("handshake: hs-extra already has an XDP program (id "),
        "{refused}"
    );
    assert!(
        !bed.xdp_attached(),
        "the first interface was not rolled back"
    );
    assert!(!Path::new(&format!("{}/hs-server", bed.ns_dir)).exists());
}

#[test]
fn metrics_serve_every_scrape_beside_idle_and_slow_clients() {
    let bed = Bed::new();
    let mut run = bed.run(&["--interval", "0.2", "--metrics", "127.0.0.1:9724"]);
    let lines = lines_of(run.stdout.take().unwrap());
    scrape(&bed.lab, 9724);
    let idle: Vec<TcpStream> = run_in(&bed.lab.server, || {
        (0..200)
            .map(|_| TcpStream::connect(("127.0.0.1", 9724)).unwrap())
            .collect()
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let slow_stop = stop.clone();
    let slow = spawn_in(&bed.lab.server, move || {
        let mut stream = TcpStream::connect(("127.0.0.1", 9724)).unwrap();
        let _ = stream.write_all(b"GET /metr");
        while !slow_stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(300));
            if stream.write_all(b"i").is_err() {
                break;
            }
        }
    })
    .unwrap();
    bed.connect(8080, 2);
    let started = Instant::now();
    let response = scrape(&bed.lab, 9724);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a scrape waited {:?} behind idle clients",
        started.elapsed()
    );
    assert!(
        response.contains("handshake_syn_ack_sent_total{iface=\"hs-server\",port=\"8080\"} 4\n"),
        "{response}"
    );
    // The counter tables keep coming meanwhile.
    while lines.try_recv().is_ok() {}
    std::thread::sleep(Duration::from_secs(1));
    let tables = lines
        .try_iter()
        .filter(|line| line.starts_with("counter "))
        .count();
    assert!(tables >= 3, "{tables} counter tables in a second");
    sigterm(&mut run);
    assert!(run.wait().unwrap().success());
    assert!(!bed.xdp_attached());
    stop.store(true, Ordering::Relaxed);
    slow.join().unwrap();
    drop(idle);
}

#[test]
fn concurrent_port_changes_all_land_and_names_stay_inside_the_pin_folder() {
    let bed = Bed::new();
    bed.ok(&[
        "attach",
        "--iface",
        SERVER_IFACE,
        "--ports",
        "8080,8443,9000-9001",
    ]);
    // Each call adds a range of 30, so that the calls overlap for longer than a process
    // start: without the lock two of them take the same free slots.
    let ranges: Vec<String> = (0..20)
        .map(|i| format!("{}-{}", 10_000 + i * 30, 10_000 + i * 30 + 29))
        .collect();
    let in_parallel = |verb: &str| {
        let children: Vec<Child> = ranges
            .iter()
            .map(|range| {
                bed.command(&["ports", verb, "--iface", SERVER_IFACE, range])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{output:?}");
        }
    };
    in_parallel("add");
    let listed = bed.ok(&["ports", "list", "--iface", SERVER_IFACE]);
    let listed: Vec<u16> = listed
        .trim_end()
        .trim_start_matches("hs-server: protected ports ")
        .split(',')
        .map(|port| port.parse().unwrap())
        .collect();
    let missing: Vec<u16> = (10_000..10_600)
        .filter(|port| !listed.contains(port))
        .collect();
    assert_eq!(missing, [0u16; 0], "ports lost to a race");
    assert_eq!(listed.len(), 604);
    assert_eq!(
        bed.stats()["interfaces"][0]["ports"]
            .as_array()
            .unwrap()
            .len(),
        604
    );
    in_parallel("remove");
    assert_eq!(
        bed.ok(&["ports", "remove", "--iface", SERVER_IFACE, "9000-9001,8443"]),
        "hs-server: protected ports 8080\n"
    );
    assert_eq!(
        bed.ok(&[
            "ports",
            "add",
            "--iface",
            SERVER_IFACE,
            "443,7000-7001",
            "7002"
        ]),
        "hs-server: protected ports 443,7000,7001,7002,8080\n"
    );

    let keep = format!("{}/keep", bed.pin_dir);
    std::fs::create_dir_all(&keep).unwrap();
    assert_eq!(
        bed.error(&["detach", "--iface", "../keep"]),
        "handshake: \"../keep\" is not an interface name (1 to 15 characters, no '/', ':' or spaces); `ip link` lists interfaces\n"
    );
    assert!(Path::new(&keep).exists());
}

#[test]
fn run_follows_an_interface_deleted_and_created_again() {
    let bed = Bed::new();
    bed.add_veth("hs-extra");
    let config = bed.config(
        "run",
        "metrics = \"127.0.0.1:9725\"\n\n[[interface]]\nname = \"hs-server\"\nports = [8080]\nxdp_mode = \"native\"\n\n[[interface]]\nname = \"hs-extra\"\nports = [443]\nxdp_mode = \"generic\"\n",
    );
    let mut run = bed
        .command(&["run", "--config", &config])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let warnings = lines_of(run.stderr.take().unwrap());
    scrape(&bed.lab, 9725);
    std::fs::remove_file(&config).unwrap();
    assert!(bed.xdp_on("hs-extra"));

    let server = bed.lab.server.clone();
    bed.lab
        .exec(&server, &["ip", "link", "del", "hs-extra"])
        .unwrap();
    expect_line(
        &warnings,
        "handshake: warning: hs-extra was deleted or recreated: protection is gone; handshake attaches again when an interface hs-extra is back",
    );
    let response = scrape(&bed.lab, 9725);
    assert!(
        response.contains("handshake_protected{iface=\"hs-extra\"} 0\n"),
        "{response}"
    );
    assert!(response.contains("handshake_protected{iface=\"hs-server\"} 1\n"));

    bed.add_veth("hs-extra");
    expect_line(
        &warnings,
        "handshake: warning: hs-extra is back: protected again (generic XDP)",
    );
    assert!(bed.xdp_on("hs-extra"));
    let status = bed.ok(&["status"]);
    assert!(
        status.starts_with("hs-extra: protected by `handshake run` (program id "),
        "{status}"
    );
    assert!(scrape(&bed.lab, 9725).contains("handshake_protected{iface=\"hs-extra\"} 1\n"));
    bed.connect(8080, 2);

    sigterm(&mut run);
    assert!(run.wait().unwrap().success());
    assert!(!bed.xdp_on("hs-extra"));
    assert!(!bed.xdp_attached());
}

#[test]
fn a_refused_native_attach_keeps_the_kernels_errno() {
    let bed = Bed::new();
    bed.add_veth("hs-big");
    let server = bed.lab.server.clone();
    for iface in ["hs-big", "hs-big-p"] {
        bed.lab
            .exec(&server, &["ip", "link", "set", iface, "mtu", "9000"])
            .unwrap();
    }
    let native = [
        "attach",
        "--iface",
        "hs-big",
        "--ports",
        "80",
        "--xdp-mode",
        "native",
    ];
    assert_eq!(
        bed.error(&native),
        "handshake: attaching XDP (Native) to hs-big failed: `bpf_link_create` failed: Numerical result out of range (os error 34) (the MTU, or a veth peer's MTU, is too large for XDP in this mode: lower it); try --xdp-mode generic or auto\n"
    );
    assert!(!bed.xdp_on("hs-big"));
    let auto = bed.handshake(&["attach", "--iface", "hs-big", "--ports", "80"]);
    assert!(auto.status.success());
    assert_eq!(
        String::from_utf8(auto.stderr).unwrap(),
        "handshake: warning: native XDP on hs-big failed (`bpf_link_create` failed: Numerical result out of range (os error 34) (the MTU, or a veth peer's MTU, is too large for XDP in this mode: lower it)); falling back to generic XDP, which runs after the kernel allocates an skb and costs more per packet\n"
    );
    assert!(
        bed.ok(&["status"])
            .starts_with("hs-big: generic XDP, ports 80, program id ")
    );
}
