//! State is read from the kernel, not from folder names: an interface recreated or
//! deleted, another network namespace, `ip netns exec`, what `handshake run` protects, and
//! the kernel's own reason when it refuses an attach.

mod common;

use std::process::{Command, Stdio};

use common::pinned::{
    ATTACH, BINARY, Bed, error, expect_line, expect_line_where, lines_of, ok, scrape, sigterm,
    total,
};
use handshake::lab::SERVER_IFACE;
use serde_json::Value;

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

/// What the program cannot read itself, `run` keeps current: an address added while it
/// runs is answered at XDP once `run` has seen it, and a new MAC is followed.
#[test]
fn run_follows_new_local_addresses_and_a_new_mac() {
    let bed = Bed::new();
    let mut run = bed.run(&["--metrics", "127.0.0.1:9726"]);
    let warnings = lines_of(run.stderr.take().unwrap());
    let answered = |bed: &Bed| -> u64 {
        let response = scrape(&bed.lab, 9726);
        let key = "handshake_syn_ack_sent_total{iface=\"hs-server\",port=\"8080\"} ";
        let line = response.lines().find(|line| line.starts_with(key));
        line.map_or(0, |line| line[key.len()..].parse().unwrap())
    };
    let connect_to = |bed: &Bed, address: &'static str| {
        handshake::lab::run_in(&bed.lab.client, move || {
            std::net::TcpStream::connect((address, 8080)).map(drop)
        })
        .unwrap()
        .unwrap();
    };
    assert_eq!(answered(&bed), 0);
    let server = bed.lab.server.clone();
    bed.lab
        .exec(
            &server,
            &["ip", "addr", "add", "198.18.0.9/24", "dev", SERVER_IFACE],
        )
        .unwrap();
    // (The veth's own IPv6 link-local address may join the table in the same second, once
    // its duplicate address detection is done.)
    let changed =
        format!("handshake: warning: {SERVER_IFACE}: the local routing table changed (+198.18.0.9");
    expect_line_where(&warnings, &format!("{changed}...)"), |line| {
        line.starts_with(&changed) && line.ends_with("); handshake follows it")
    });
    connect_to(&bed, "198.18.0.9");
    assert_eq!(answered(&bed), 1);

    let old = bed
        .lab
        .output(
            &server,
            &["cat", &format!("/sys/class/net/{SERVER_IFACE}/address")],
        )
        .unwrap();
    bed.lab
        .exec(
            &server,
            &[
                "ip",
                "link",
                "set",
                SERVER_IFACE,
                "address",
                "02:00:00:00:00:77",
            ],
        )
        .unwrap();
    expect_line(
        &warnings,
        &format!(
            "handshake: warning: {SERVER_IFACE}: MAC {} -> 02:00:00:00:00:77; SYN-ACKs follow",
            old.trim()
        ),
    );
    // The client learns the new MAC afresh.
    let client = bed.lab.client.clone();
    bed.lab
        .exec(&client, &["ip", "neigh", "flush", "all"])
        .unwrap();
    connect_to(&bed, "198.18.0.1");
    assert_eq!(answered(&bed), 2);

    sigterm(&mut run);
    assert!(run.wait().unwrap().success());
}

/// VLAN devices are named IF.VID, and the BPF filesystem refuses names with a dot: the pin
/// folder spells the dot as ':' (which no interface name holds), and every command still
/// speaks of the interface by its name.
#[test]
fn an_interface_with_a_dot_in_its_name_is_attached_listed_and_detached() {
    let bed = Bed::new();
    bed.add_veth("hs-v.7");
    let attach = [
        "attach",
        "--iface",
        "hs-v.7",
        "--ports",
        "443",
        "--xdp-mode",
        "generic",
    ];
    assert!(
        bed.ok(&attach)
            .contains("handshake protects TCP ports 443 on hs-v.7 (generic XDP")
    );
    assert!(bed.xdp_on("hs-v.7"));
    assert!(std::path::Path::new(&format!("{}/hs-v:7/link", bed.ns_dir)).exists());
    assert!(
        bed.ok(&["status"])
            .starts_with("hs-v.7: generic XDP, ports 443, program id "),
        "{}",
        bed.ok(&["status"])
    );
    bed.ok(&["ports", "add", "--iface", "hs-v.7", "8443"]);
    assert_eq!(
        bed.ok(&["ports", "list", "--iface", "hs-v.7"]),
        "hs-v.7: protected ports 443,8443\n"
    );
    bed.ok(&["detach", "--iface", "hs-v.7"]);
    assert!(!bed.xdp_on("hs-v.7"));
    assert!(!std::path::Path::new(&format!("{}/hs-v:7", bed.ns_dir)).exists());
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

#[test]
fn pins_of_the_older_layout_are_pointed_out() {
    let bed = Bed::new();
    // Before folders per namespace, pins lived in ROOT/IFACE.
    let old = format!("{}/hs-server", bed.pin_dir);
    std::fs::create_dir_all(&old).unwrap();
    let dir = old.clone();
    handshake::lab::run_in(&bed.lab.server, move || {
        handshake::loader::Handshake::load_with_pins(Some(std::path::Path::new(&dir))).unwrap();
    })
    .unwrap();
    assert_eq!(
        bed.ok(&["status"]),
        format!(
            "note: {old} is no network namespace's folder (pins of a handshake from before folders per namespace?); what it pins stays attached until `rm -r {old}`\nhandshake protects nothing in this network namespace (no attachments in {})\n",
            bed.ns_dir
        )
    );
}

#[test]
fn status_names_what_changed_on_the_host_since_attach() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    let fresh = bed.ok(&["status"]);
    assert!(!fresh.contains("STALE"), "{fresh}");
    // The namespace's TCP sysctls are read per SYN (kernel_oracle.rs checks the answers):
    // changing them stales nothing.
    bed.lab
        .sysctl(&bed.lab.server, "net.ipv4.tcp_timestamps", "1")
        .unwrap();
    bed.lab
        .sysctl(&bed.lab.server, "net.ipv4.ip_default_ttl", "99")
        .unwrap();
    let followed = bed.ok(&["status"]);
    assert!(!followed.contains("STALE"), "{followed}");
    // The interface's IPv6 hop limit is what the program was given at attach.
    bed.lab
        .sysctl(
            &bed.lab.server,
            &format!("net.ipv6.conf.{SERVER_IFACE}.hop_limit"),
            "99",
        )
        .unwrap();
    // And a new address: the program's copy of the local routing table lacks it (SYNs to
    // it go to the kernel, golden.rs `syns_for_another_host_pass_untouched`).
    bed.lab
        .output(
            &bed.lab.server,
            &["ip", "addr", "add", "198.18.0.9/24", "dev", SERVER_IFACE],
        )
        .unwrap();
    let status = bed.ok(&["status"]);
    let handshake = format!("handshake --pin-dir {}", bed.pin_dir);
    let stale = format!(
        "{SERVER_IFACE}: STALE: changed since attach: the interface's IPv6 hop_limit, the namespace's local addresses (`ip route show table local`); the program still answers with what it was given at attach, which may differ from the kernel's; run `{handshake} detach --iface {SERVER_IFACE}` and `{handshake} attach --iface {SERVER_IFACE} --ports 8080` (`handshake run` follows these changes itself)"
    );
    assert!(status.lines().any(|line| line == stale), "{status}");
    let json: Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        json["interfaces"][0]["changed_since_attach"],
        serde_json::json!([
            "the interface's IPv6 hop_limit",
            "the namespace's local addresses (`ip route show table local`)"
        ])
    );
    // `stats` says so too, before its table.
    let stats = bed.handshake(&["stats"]);
    assert!(stats.status.success());
    assert_eq!(
        String::from_utf8(stats.stderr).unwrap(),
        format!(
            "handshake: warning: {SERVER_IFACE}: STALE: changed since attach: the interface's IPv6 hop_limit, the namespace's local addresses (`ip route show table local`); `{handshake} status` says how to refresh it\n"
        )
    );
}

/// `bpftool link detach` (BPF_LINK_DETACH on the pinned link) leaves every pin in place
/// but the interface without a program: `status` and `ports` say protection is gone, and
/// `attach` replaces the dead pins.
#[test]
fn a_detached_link_is_reported_and_attach_replaces_the_dead_pins() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    link_detach(&format!("{}/{SERVER_IFACE}/link", bed.ns_dir));
    assert!(
        !bed.xdp_attached(),
        "BPF_LINK_DETACH left a program attached"
    );

    let handshake = format!("handshake --pin-dir {}", bed.pin_dir);
    let gone = format!(
        "{SERVER_IFACE} was recreated or its XDP link was detached (it runs no XDP program): protection is gone; run `{handshake} attach --iface {SERVER_IFACE} --ports 8080` again (it replaces these pins), or `{handshake} detach --iface {SERVER_IFACE}` to remove them"
    );
    let status = bed.ok(&["status"]);
    assert_eq!(
        status.lines().next(),
        Some(format!("{SERVER_IFACE}: NOT PROTECTED: {gone}").as_str()),
        "{status}"
    );
    assert_eq!(
        bed.error(&["ports", "add", "--iface", SERVER_IFACE, "8443"]),
        format!("handshake: {gone}\n")
    );
    bed.ok(&ATTACH);
    assert!(bed.xdp_attached());
    assert!(
        bed.ok(&["status"])
            .starts_with(&format!("{SERVER_IFACE}: native XDP, ports 8080"))
    );
}

/// A deleted network namespace leaves its pin folder behind, holding the program and maps
/// in kernel memory: `status` names it from any namespace alive, with the command that
/// removes it; `detach --gone` removes it and nothing else, not even the folder of a
/// namespace alive whose pins protect nothing; a second call finds nothing to remove.
#[test]
fn pins_of_a_deleted_namespace_are_reported_and_detach_gone_removes_only_them() {
    let bed = Bed::new();
    bed.ok(&ATTACH);
    let client = bed.lab.client.clone();
    let in_client = |args: &[&str]| ok(bed.command_in(&client, args).output().unwrap(), args);
    // A namespace alive whose pins protect nothing (its link detached) is not gone.
    bed.add_veth_in(&client, "hs-idle");
    in_client(&[
        "attach",
        "--iface",
        "hs-idle",
        "--ports",
        "443",
        "--xdp-mode",
        "generic",
    ]);
    let client_dir = format!("{}/netns-{}", bed.pin_dir, cookie_of(&client));
    link_detach(&format!("{client_dir}/hs-idle/link"));

    let doomed = Namespace::add(format!("{}-gone", bed.lab.server));
    bed.add_veth_in(&doomed.0, "hs-gone");
    let attach = [
        "attach",
        "--iface",
        "hs-gone",
        "--ports",
        "443",
        "--xdp-mode",
        "generic",
    ];
    ok(
        bed.command_in(&doomed.0, &attach).output().unwrap(),
        &attach,
    );
    let gone_dir = format!("{}/netns-{}", bed.pin_dir, cookie_of(&doomed.0));
    doomed.delete();
    // The kernel destroys a namespace from a work queue, after its last holder is gone.
    wait_until_detached(&format!("{gone_dir}/hs-gone/link"));

    let handshake = format!("handshake --pin-dir {}", bed.pin_dir);
    let note = format!(
        "note: {gone_dir} holds the pins of a network namespace that is gone (interfaces: hs-gone): they protect nothing and hold kernel memory until `{handshake} detach --gone`"
    );
    let status = bed.ok(&["status"]);
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines[0], note, "{status}");
    assert!(
        lines[1].starts_with("hs-server: native XDP, ports 8080, program id "),
        "{status}"
    );
    assert!(!status.contains(&client_dir), "{status}");
    let json: Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    assert_eq!(
        json["gone_namespaces"],
        serde_json::json!([{
            "pin_dir": gone_dir,
            "netns_cookie": gone_dir.rsplit_once("netns-").unwrap().1.parse::<u64>().unwrap(),
            "interfaces": ["hs-gone"],
            "remove_with": format!("{handshake} detach --gone"),
        }])
    );
    assert_eq!(json["interfaces"].as_array().unwrap().len(), 1);
    let client_status = in_client(&["status"]);
    assert_eq!(client_status.lines().next(), Some(note.as_str()));
    assert!(
        client_status.lines().nth(1).unwrap().starts_with(
            "hs-idle: NOT PROTECTED: hs-idle was recreated or its XDP link was detached"
        ),
        "{client_status}"
    );

    // Removed from another namespace than the server's: only the gone folder goes.
    assert_eq!(
        in_client(&["detach", "--gone"]),
        format!(
            "removed {gone_dir}: the pins of a network namespace that is gone (interfaces: hs-gone)\n"
        )
    );
    assert!(!std::path::Path::new(&gone_dir).exists());
    assert!(std::path::Path::new(&format!("{client_dir}/hs-idle/link")).exists());
    assert_eq!(
        bed.ok(&["ports", "list", "--iface", SERVER_IFACE]),
        "hs-server: protected ports 8080\n"
    );
    bed.connect(8080, 2);
    assert_eq!(total(&bed.stats(), "syn_ack_sent"), 4);

    // Idempotent, and status says nothing more about it.
    assert_eq!(
        bed.ok(&["detach", "--gone"]),
        format!(
            "no pins of a network namespace that is gone under {}\n",
            bed.pin_dir
        )
    );
    let status = bed.ok(&["status"]);
    assert!(
        status.starts_with("hs-server: native XDP, ports 8080, program id "),
        "{status}"
    );
    let json: Value = serde_json::from_str(&bed.ok(&["status", "--json"])).unwrap();
    assert_eq!(json["gone_namespaces"], serde_json::json!([]));
}

/// A network namespace of a test's own (`ip netns add`), deleted when dropped.
struct Namespace(String);

impl Namespace {
    fn add(name: String) -> Self {
        ip_netns(&["add", &name]);
        Self(name)
    }

    /// `ip netns del`: the namespace dies with its last holder.
    fn delete(self) {
        ip_netns(&["del", &self.0]);
        std::mem::forget(self);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn ip_netns(args: &[&str]) {
    let output = Command::new("ip").arg("netns").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip netns {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn cookie_of(ns: &str) -> u64 {
    handshake::lab::run_in(ns, handshake::interface::netns_cookie)
        .unwrap()
        .unwrap()
}

/// Waits until the kernel has detached the XDP link pinned at `pin` (its interface was
/// unregistered), for at most 30 s.
fn wait_until_detached(pin: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match handshake::gone::link_ifindex(std::path::Path::new(pin)) {
            Ok(0) => return,
            Ok(ifindex) if std::time::Instant::now() > deadline => {
                panic!("the link pinned at {pin} is still attached to ifindex {ifindex} after 30 s")
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Err(error) => panic!("reading the link pinned at {pin}: {error}"),
        }
    }
}

/// What `bpftool link detach pinned PATH` does: BPF_OBJ_GET on the pin, then
/// BPF_LINK_DETACH on the link (include/uapi/linux/bpf.h; bpftool is not installed here).
fn link_detach(pin: &str) {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_LINK_DETACH: libc::c_long = 34;
    let path = std::ffi::CString::new(pin).unwrap();
    // union bpf_attr: obj_get is { __u64 pathname; __u32 bpf_fd; __u32 file_flags; },
    // link_detach is { __u32 link_fd; }.
    let mut attr = [0u64; 16];
    attr[0] = path.as_ptr() as u64;
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            attr.as_mut_ptr(),
            size_of_val(&attr),
        )
    };
    assert!(
        fd >= 0,
        "BPF_OBJ_GET {pin}: {}",
        std::io::Error::last_os_error()
    );
    let mut attr = [0u64; 16];
    attr[0] = fd as u64;
    let detached = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_DETACH,
            attr.as_mut_ptr(),
            size_of_val(&attr),
        )
    };
    assert_eq!(
        detached,
        0,
        "BPF_LINK_DETACH: {}",
        std::io::Error::last_os_error()
    );
    unsafe { libc::close(fd as i32) };
}
