//! Upgrade in place (handshake-user's commands/upgrade.rs): `handshake attach` over an
//! interface another build protects replaces that program on the same XDP link. The other
//! build here is a real one: the product's program built with its `count-calls` feature,
//! which this crate embeds for the microbenchmark. A client connects in a loop across the
//! upgrade: no connection may fail, and every SYN must be answered at XDP, by the old
//! program or the new, with the counters carried over.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use handshake::{
    attach, build_info,
    lab::{CLIENT_IFACE, Lab, SERVER_IFACE, SERVER_V4, echo::EchoServer, run_in},
    loader::{Handshake, Mode, PassThrough},
    pins::{self, PinRoot},
    settings::Settings,
    state,
};
use handshake_bench::COUNTING_OBJECT;
use handshake_common::counters::{Counter, PortCounters};

const PORT: u16 = 8080;
/// Connections before the upgrade, and after it, at the least.
const EACH_SIDE: u64 = 40;

fn settings() -> Settings {
    Settings {
        iface: SERVER_IFACE.to_owned(),
        ports: vec![PORT],
        mode: Mode::Native,
        mss: None,
        timestamps: false,
        allow: Vec::new(),
        deny: Vec::new(),
        dry_run: false,
        limits: Default::default(),
    }
}

#[test]
fn attach_over_another_build_replaces_it_on_the_link_and_no_connection_fails() {
    // Fails loudly rather than skips: see handshake-user's tests/common/mod.rs.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the upgrade test needs root");
    let lab = Lab::create("upgrade").unwrap();
    // Every SYN answered at XDP: cookies always, and the client's timestamps answered.
    lab.cookies_at_xdp().unwrap();
    let _server = EchoServer::start(&lab.server, PORT).unwrap();
    let _peer = run_in(&lab.client, || PassThrough::attach(CLIENT_IFACE))
        .unwrap()
        .unwrap();
    let pin_dir = format!("/sys/fs/bpf/handshake-test-{}", lab.server);

    // The other build, attached and pinned as `handshake attach` pins.
    let root = pin_dir.clone();
    let old_id = run_in(&lab.server, move || -> anyhow::Result<u32> {
        let root = PinRoot::new(&root)?;
        root.prepare()?;
        let dir = root.iface_dir(SERVER_IFACE);
        std::fs::create_dir(&dir)?;
        let (config, _) = settings().validate()?;
        let mut old = Handshake::load_object(COUNTING_OBJECT, Some(&dir))?;
        old.set_config(&config)?;
        old.set_ports(&[PORT])?;
        old.attach(SERVER_IFACE, Mode::Native)?;
        old.pin_link(&dir.join(pins::LINK))?;
        old.program_id()
    })
    .unwrap()
    .unwrap();

    // The client: one short exchange per connection, until told to stop.
    let (done, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let client = {
        let (done, stop, client) = (done.clone(), stop.clone(), lab.client.clone());
        std::thread::spawn(move || {
            run_in(&client, move || -> Vec<String> {
                let server = SocketAddr::new(SERVER_V4.into(), PORT);
                let mut failed = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let exchange = || -> std::io::Result<()> {
                        let mut stream =
                            TcpStream::connect_timeout(&server, Duration::from_secs(3))?;
                        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
                        stream.write_all(b"0123456789abcdef")?;
                        let mut echoed = [0u8; 16];
                        stream.read_exact(&mut echoed)?;
                        Ok(())
                    };
                    match exchange() {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(error) => {
                            failed.push(error.to_string());
                            done.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                failed
            })
            .unwrap()
        })
    };
    let wait_for = |count: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while done.load(Ordering::Relaxed) < count {
            assert!(Instant::now() < deadline, "the client stalled at {count}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(EACH_SIDE);
    let root = pin_dir.clone();
    run_in(&lab.server, move || {
        attach::attach(&PinRoot::new(&root)?, &[settings()])
    })
    .unwrap()
    .unwrap();
    let upgraded_at = done.load(Ordering::Relaxed);
    wait_for(upgraded_at + EACH_SIDE);
    stop.store(true, Ordering::Relaxed);
    let failed = client.join().unwrap();
    let connections = done.load(Ordering::Relaxed);
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "connections failed across the upgrade"
    );

    let root = pin_dir.clone();
    let (new_id, new_tag, own_tag, counted, port, ports) = run_in(&lab.server, move || {
        let root = PinRoot::new(&root)?;
        let pinned = state::protected(&root, SERVER_IFACE)?;
        let port: PortCounters = pinned.maps.ports.counters()?[&PORT];
        let result = (
            pinned.program_id,
            build_info::tag_of(pinned.program_id),
            build_info::own_tag()?,
            pinned.maps.counters()?,
            port,
            pinned.ports(),
        );
        attach::detach(&root, SERVER_IFACE)?;
        anyhow::Ok(result)
    })
    .unwrap()
    .unwrap();
    let _ = std::fs::remove_dir_all(&pin_dir);

    // The pinned program and the link's are this build's now (`state::protected` checks
    // the link runs the pinned program).
    assert_ne!(new_id, old_id);
    assert_eq!(new_tag, Some(own_tag));
    assert_eq!(ports, [PORT]);
    // Every SYN answered at XDP, before and after, and counted in the same maps.
    assert_eq!(
        [
            Counter::SynAckSent,
            Counter::SynPassedNoCookie,
            Counter::SynPassedError,
            Counter::SynPassedKernelOnly,
            Counter::SynPassedNotForHost
        ]
        .map(|counter| counted.get(counter)),
        [connections, 0, 0, 0, 0],
        "SynAckSent, SynPassedNoCookie, SynPassedError, SynPassedKernelOnly, SynPassedNotForHost"
    );
    assert_eq!(port.syn_ack_sent, connections);
}
