//! Protection that outlives the CLI: `attach` pins, exits, and protection stays; ports
//! change live; stats and metrics come from other processes; `detach` leaves nothing.

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use common::pinned::{ATTACH, Bed, port_total, scrape, total};
use handshake::{
    lab::{SERVER_IFACE, SERVER_V4, echo::exchange, run_in},
    loader::PassThrough,
};
use serde_json::Value;

#[test]
fn attach_outlives_the_cli_and_ports_change_live() {
    let bed = Bed::new();
    let attached = bed.ok(&ATTACH);
    let last = attached.lines().last().unwrap();
    assert!(
        last.starts_with("handshake protects TCP ports 8080 on hs-server (native XDP), pinned in"),
        "{attached}"
    );
    assert!(attached.starts_with("tcp_syncookies=2: every SYN to a protected port is answered"));
    // The attaching process has exited; the program still answers.
    bed.connect(8080, 5);
    let stats = bed.stats();
    assert_eq!(total(&stats, "syn_ack_sent"), 10);
    assert_eq!(total(&stats, "ack_validated"), 10);
    assert_eq!(port_total(&stats, 8080, "syn_ack_sent"), Some(10));
    let status = bed.ok(&["status"]);
    assert!(
        status.starts_with("hs-server: native XDP, ports 8080, program id "),
        "{status}"
    );

    // A client loop keeps connecting to 8080 while the ports change under it.
    let stop = Arc::new(AtomicBool::new(false));
    let (made, loop_stop) = (Arc::new(AtomicU32::new(0)), stop.clone());
    let counter = made.clone();
    let client = handshake::lab::netns::spawn_in(&bed.lab.client, move || -> anyhow::Result<()> {
        while !loop_stop.load(Ordering::Relaxed) {
            exchange(SocketAddr::new(IpAddr::V4(SERVER_V4), 8080), b"loop")?;
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        bed.ok(&["ports", "add", "--iface", SERVER_IFACE, "8443"]),
        "hs-server: protected ports 8080,8443\n"
    );
    bed.connect(8443, 3);
    assert_eq!(
        bed.ok(&["ports", "remove", "--iface", SERVER_IFACE, "8080"]),
        "hs-server: protected ports 8443\n"
    );
    let before_removed = bed.stats();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    client
        .join()
        .unwrap()
        .expect("a connection failed while ports changed");
    assert!(made.load(Ordering::Relaxed) > 0);

    let stats = bed.stats();
    assert_eq!(port_total(&stats, 8443, "syn_ack_sent"), Some(6));
    assert_eq!(
        port_total(&stats, 8080, "syn_ack_sent"),
        None,
        "8080 is no longer protected"
    );
    // SYNs to the removed port go to the kernel, which answers with its own cookies.
    assert_eq!(
        total(&stats, "syn_ack_sent"),
        total(&before_removed, "syn_ack_sent")
    );
    let kernel_cookies = bed
        .lab
        .nstat(&bed.lab.server, "TcpExtSyncookiesSent")
        .unwrap();
    bed.connect(8080, 2);
    assert_eq!(
        bed.lab
            .nstat(&bed.lab.server, "TcpExtSyncookiesSent")
            .unwrap(),
        kernel_cookies + 4
    );
    assert_eq!(
        bed.ok(&["ports", "list", "--iface", SERVER_IFACE]),
        "hs-server: protected ports 8443\n"
    );

    // A new port takes 8080's counter slot: it starts from zero, and the totals keep what
    // 8080 counted (the program counts per-port verdicts in the slots only).
    let before_reuse = bed.stats();
    assert!(
        total(&before_reuse, "syn_ack_sent") > 16,
        "8080 and 8443 counted"
    );
    assert_eq!(
        bed.ok(&["ports", "add", "--iface", SERVER_IFACE, "9090"]),
        "hs-server: protected ports 8443,9090\n"
    );
    let stats = bed.stats();
    assert_eq!(port_total(&stats, 9090, "syn_ack_sent"), Some(0));
    assert_eq!(port_total(&stats, 8443, "syn_ack_sent"), Some(6));
    for counter in ["syn_ack_sent", "ack_validated", "ack_dropped_forged"] {
        assert_eq!(
            total(&stats, counter),
            total(&before_reuse, counter),
            "{counter}"
        );
    }
}

#[test]
fn metrics_are_served_beside_an_attached_program_and_detach_leaves_nothing() {
    let bed = Bed::new();
    bed.ok(&[
        "attach",
        "--iface",
        SERVER_IFACE,
        "--ports",
        "8080,8443",
        "--xdp-mode",
        "native",
    ]);
    bed.connect(8443, 3);
    let mut metrics = bed
        .command(&["metrics", "--listen", "127.0.0.1:9720"])
        .spawn()
        .unwrap();
    let response = scrape(&bed.lab, 9720);
    metrics.kill().unwrap();
    metrics.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let samples: Vec<&str> = response
        .lines()
        .filter(|line| line.starts_with("handshake_"))
        .collect();
    assert!(
        samples.contains(&"handshake_syn_ack_sent_total{iface=\"hs-server\",port=\"8443\"} 6"),
        "{samples:?}"
    );
    assert!(
        samples.contains(&"handshake_syn_ack_sent_total{iface=\"hs-server\",port=\"8080\"} 0"),
        "{samples:?}"
    );
    assert!(
        samples
            .contains(&"handshake_ack_dropped_forged_total{iface=\"hs-server\",port=\"8443\"} 0")
    );
    assert!(samples.contains(&"handshake_malformed_total{iface=\"hs-server\"} 0"));
    assert!(
        response
            .contains("# HELP handshake_syn_ack_sent SYNs answered with a cookie SYN-ACK at XDP")
    );
    assert!(response.ends_with("# EOF\n"));

    let map_ids: Vec<u32> = ["CONFIG", "PORTS", "SLOT_PORTS", "PORT_COUNTERS", "COUNTERS"]
        .map(|name| {
            aya::maps::MapInfo::from_pin(format!("{}/{SERVER_IFACE}/{name}", bed.ns_dir))
                .unwrap()
                .id()
        })
        .into();
    assert_eq!(
        bed.ok(&["detach", "--iface", SERVER_IFACE]),
        "handshake no longer protects hs-server\n"
    );
    assert!(
        !std::path::Path::new(&bed.pin_dir).exists(),
        "pins or empty folders left behind"
    );
    assert!(!bed.xdp_attached(), "XDP still attached after detach");
    // The kernel frees maps once the last reference is gone (after an RCU grace period).
    let deadline = Instant::now() + Duration::from_secs(5);
    while aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .any(|map| map_ids.contains(&map.id()))
    {
        assert!(
            Instant::now() < deadline,
            "maps {map_ids:?} outlived detach"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        bed.ok(&["status"]),
        format!(
            "handshake protects nothing in this network namespace (no attachments in {})\n",
            bed.ns_dir
        )
    );
}

#[test]
fn refusals_name_the_problem_and_change_nothing() {
    let bed = Bed::new();
    bed.ok(&["attach", "--iface", SERVER_IFACE, "--ports", "8080"]);
    let twice = bed.error(&["attach", "--iface", SERVER_IFACE, "--ports", "443"]);
    assert!(twice.starts_with(&format!("handshake: handshake already protects hs-server (pinned in {}/hs-server); nothing changed.", bed.ns_dir)), "{twice}");
    assert_eq!(
        bed.ok(&["ports", "list", "--iface", SERVER_IFACE]),
        "hs-server: protected ports 8080\n"
    );
    assert_eq!(
        bed.error(&["ports", "remove", "--iface", SERVER_IFACE, "9999"]),
        "handshake: port 9999 is not protected here; `handshake ports list` shows the protected ports\n"
    );
    bed.ok(&["detach", "--iface", SERVER_IFACE]);
    assert_eq!(
        bed.error(&["detach", "--iface", SERVER_IFACE]),
        format!(
            "handshake: handshake is not attached to hs-server (no {}/hs-server); `handshake --pin-dir {} status` lists what it protects\n",
            bed.ns_dir, bed.pin_dir
        )
    );

    // Another XDP program on the interface is named, never replaced.
    let foreign = run_in(&bed.lab.server, || PassThrough::attach(SERVER_IFACE))
        .unwrap()
        .unwrap();
    let refused = bed.error(&["attach", "--iface", SERVER_IFACE, "--ports", "8080"]);
    assert!(
        refused.starts_with("handshake: hs-server already has an XDP program (id "),
        "{refused}"
    );
    assert!(
        refused.contains("name handshake_pass); handshake will not replace it"),
        "{refused}"
    );
    assert!(!std::path::Path::new(&format!("{}/hs-server", bed.ns_dir)).exists());
    drop(foreign);

    // A crashed attach leaves a folder without its link: reported, refused by the commands
    // that need it, replaced by `attach`.
    std::fs::create_dir_all(format!("{}/hs-server", bed.ns_dir)).unwrap();
    let status = bed.ok(&["status"]);
    assert!(
        status.starts_with(
            "hs-server: NOT PROTECTED: stale pins from an attach that did not finish (the XDP link pin is missing"
        ),
        "{status}"
    );
    let stale = bed.error(&["ports", "list", "--iface", SERVER_IFACE]);
    assert!(
        stale.starts_with(&format!(
            "handshake: {}/hs-server: stale pins from an attach that did not finish (the XDP link pin is missing",
            bed.ns_dir
        )),
        "{stale}"
    );
    let output = bed.handshake(&["attach", "--iface", SERVER_IFACE, "--ports", "8080"]);
    assert!(output.status.success());
    let warning = String::from_utf8(output.stderr).unwrap();
    assert!(
        warning.starts_with(&format!(
            "handshake: warning: replacing the pins in {}/hs-server: stale pins from an attach that did not finish",
            bed.ns_dir
        )),
        "{warning}"
    );
    assert!(bed.xdp_attached());
    assert_eq!(
        bed.ok(&["detach", "--iface", SERVER_IFACE]),
        "handshake no longer protects hs-server\n"
    );

    // Outside a BPF filesystem nothing can be pinned.
    let output = bed
        .command_with(
            "/tmp/handshake-not-bpffs",
            &["attach", "--iface", SERVER_IFACE, "--ports", "80"],
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "handshake: /tmp/handshake-not-bpffs is not on a BPF filesystem; give a --pin-dir under /sys/fs/bpf, or mount one with `mount -t bpf bpf DIR`\n"
    );
    assert!(!bed.xdp_attached());

    // An invalid config file is refused whole, naming the line and key.
    let config = bed.config(
        "invalid",
        "[[interface]]\nname = \"hs-server\"\nports = [8080]\n\n[[interface]]\nname = \"hs-server\"\nports = [0]\n",
    );
    let invalid = bed.error(&["attach", "--config", &config]);
    std::fs::remove_file(&config).unwrap();
    assert_eq!(
        invalid,
        format!(
            "handshake: {}: line 6, key interface.name: interface hs-server appears twice; give each interface one table\n",
            config
        )
    );
    assert!(!bed.xdp_attached());
}

#[test]
fn run_serves_metrics_from_its_live_maps() {
    let bed = Bed::new();
    let mut run = bed.run(&["--metrics", "127.0.0.1:9721"]);
    let _ = scrape(&bed.lab, 9721);
    bed.connect(8080, 2);
    let response = scrape(&bed.lab, 9721);
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    assert!(run.wait().unwrap().success());
    assert!(
        response.contains("handshake_syn_ack_sent_total{iface=\"hs-server\",port=\"8080\"} 4\n"),
        "{response}"
    );
    assert!(!bed.xdp_attached());
}

#[test]
fn a_config_file_attaches_several_interfaces_each_with_its_own_ports() {
    let bed = Bed::new();
    bed.add_veth("hs-extra");
    let config = bed.config(
        "two",
        "[[interface]]\nname = \"hs-server\"\nports = [8080]\nxdp_mode = \"native\"\n\n[[interface]]\nname = \"hs-extra\"\nports = [443, 8443]\nxdp_mode = \"generic\"\nmss = 1400\n",
    );
    let attached = bed.ok(&["attach", "--config", &config]);
    std::fs::remove_file(&config).unwrap();
    assert_eq!(
        attached
            .lines()
            .filter(|line| line.starts_with("handshake protects"))
            .count(),
        2,
        "{attached}"
    );
    let status = bed.ok(&["status"]);
    let lines: Vec<&str> = status.lines().collect();
    assert!(
        lines[0].starts_with("hs-extra: generic XDP, ports 443,8443, program id "),
        "{status}"
    );
    assert!(
        lines[1].starts_with("hs-server: native XDP, ports 8080, program id "),
        "{status}"
    );
    bed.connect(8080, 2);
    let stats: Value = serde_json::from_str(&bed.ok(&["stats", "--json"])).unwrap();
    let interfaces = stats["interfaces"].as_array().unwrap();
    assert_eq!(
        interfaces
            .iter()
            .map(|i| i["iface"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["hs-extra", "hs-server"]
    );
    assert_eq!(interfaces[0]["counters"]["syn_ack_sent"]["total"], 0);
    assert_eq!(interfaces[1]["counters"]["syn_ack_sent"]["total"], 4);
    assert_eq!(interfaces[0]["ports"].as_array().unwrap().len(), 2);
    bed.ok(&["detach", "--iface", "hs-extra"]);
    bed.ok(&["detach", "--iface", SERVER_IFACE]);
    assert_eq!(
        bed.ok(&["status"]),
        format!(
            "handshake protects nothing in this network namespace (no attachments in {})\n",
            bed.ns_dir
        )
    );
}
