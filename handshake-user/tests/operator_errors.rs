//! Failures an operator meets: every refusal is one line that names the cause and the fix
//! and changes nothing; a reader that goes away stops output, never protection; the metrics
//! server serves every client at once; concurrent calls take turns.

mod common;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::TcpStream,
    os::{fd::AsRawFd as _, unix::process::ExitStatusExt as _},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::Duration,
};

use common::pinned::{ATTACH, BINARY, Bed, error, lines_of, scrape, sigterm};
use handshake::{
    lab::{SERVER_IFACE, netns::spawn_in, run_in},
    loader::PassThrough,
};

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
    let refused = bed.error(&["detach", "--iface", SERVER_IFACE]);
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
    bed.connect(8080, 2);
    // Clients that must delay no scrape, all connected before it (the listener's queue is
    // first in, first out): 200 idle ones, and one that sends a byte every 300 ms.
    let idle: Vec<TcpStream> = run_in(&bed.lab.server, || {
        (0..200)
            .map(|_| TcpStream::connect(("127.0.0.1", 9724)).unwrap())
            .collect()
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let slow_stop = stop.clone();
    let (connected, slow_stream) = mpsc::channel();
    let slow = spawn_in(&bed.lab.server, move || {
        let mut stream = TcpStream::connect(("127.0.0.1", 9724)).unwrap();
        let _ = stream.write_all(b"GET /metr");
        connected.send(stream.try_clone().unwrap()).unwrap();
        while !slow_stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(300));
            if stream.write_all(b"i").is_err() {
                break;
            }
        }
    })
    .unwrap();
    let slow_stream = slow_stream.recv().unwrap();
    let response = scrape(&bed.lab, 9724);
    // The scrape was answered while every one of them still held its connection: the
    // server closes a connection only once it has answered it or its 5 s deadline has
    // passed (metrics.rs), and neither has happened to these (nothing to read, no end of
    // stream), whereas a server taking connections in turn would have had to finish every
    // earlier one before it read the scrape. An order of events, not a time: how long
    // the scrape took does not matter, only that it came before the deadline that defines
    // an idle client.
    for (n, stream) in idle.iter().enumerate() {
        assert_eq!(
            unanswered(stream),
            Ok(()),
            "idle connection {n} was no longer open when the scrape was answered"
        );
    }
    assert_eq!(
        unanswered(&slow_stream),
        Ok(()),
        "the slow client's connection was no longer open when the scrape was answered"
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

/// `Ok` while the server has neither closed `stream` nor written to it: a read that does
/// not wait (MSG_DONTWAIT) and takes nothing (MSG_PEEK, so the stream's own flags and the
/// slow client's writes are left alone) finds no data and no end of stream yet.
fn unanswered(stream: &TcpStream) -> Result<(), String> {
    let mut byte = 0u8;
    let read = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&raw mut byte).cast(),
            1,
            libc::MSG_DONTWAIT | libc::MSG_PEEK,
        )
    };
    match read {
        0 => Err("closed by the server".to_owned()),
        n if n > 0 => Err("answered by the server".to_owned()),
        _ => match std::io::Error::last_os_error() {
            error if error.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            error => Err(error.to_string()),
        },
    }
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
