//! `handshake demo`: the whole story in one command, inside a namespace lab.

use std::time::{Duration, Instant};

use handshake_common::counters::Counter;

use crate::{
    lab::{
        CLIENT_IFACE, Lab, SERVER_IFACE,
        echo::{EchoServer, exchange_both_families},
        run_in,
    },
    loader::{Handshake, Mode, PassThrough},
    run::prepare,
    settings::Settings,
};

const PORT: u16 = 8080;

pub fn run(connections: u32) -> anyhow::Result<()> {
    println!("building a lab: namespaces with a veth pair, 198.18.0.0/24 and 2001:2::/64");
    let lab = Lab::create("demo")?;
    // Cookies for every SYN, and timestamps without offsets so the SYN-ACKs can carry
    // window scaling and SACK.
    lab.cookies_at_xdp()?;
    let _server = EchoServer::start(&lab.server, PORT)?;
    println!("echo service listening on port {PORT} in {}", lab.server);

    let _peer = run_in(&lab.client, || PassThrough::attach(CLIENT_IFACE))??;
    let handshake = run_in(&lab.server, || -> anyhow::Result<Handshake> {
        let settings = Settings {
            iface: SERVER_IFACE.to_owned(),
            ports: vec![PORT],
            mode: Mode::Native,
            mss: None,
            timestamps: true,
            allow: Vec::new(),
            deny: Vec::new(),
            dry_run: false,
            limits: Default::default(),
        };
        let (config, kernel) = settings.validate()?;
        for line in kernel.describe() {
            println!("  {line}");
        }
        let mut handshake = prepare(&settings, &config, None)?;
        handshake.attach(SERVER_IFACE, settings.mode)?;
        Ok(handshake)
    })??;
    println!("handshake attached (native XDP) on {SERVER_IFACE}, protecting port {PORT}\n");

    let (before, started) = (handshake.counters()?, Instant::now());
    run_in(&lab.client, move || {
        exchange_both_families(PORT, connections)
    })??;
    println!(
        "{connections} connections over IPv4 and {connections} over IPv6 to port {PORT} completed and echoed their data"
    );
    std::thread::sleep(Duration::from_millis(100));
    let after = handshake.counters()?;
    println!(
        "\n{}",
        after.table(&before, started.elapsed().as_secs_f64())
    );
    let recv = lab.nstat(&lab.server, "TcpExtSyncookiesRecv")?;
    let sent = lab.nstat(&lab.server, "TcpExtSyncookiesSent")?;
    println!(
        "kernel: TcpExtSyncookiesRecv={recv} (cookie ACKs it accepted), TcpExtSyncookiesSent={sent} (cookies it sent itself)"
    );
    let answered = after.get(Counter::SynAckSent);
    anyhow::ensure!(
        answered == u64::from(2 * connections),
        "expected {} SYN-ACKs from XDP, counted {answered}",
        2 * connections
    );
    println!(
        "\nevery handshake was answered at XDP with the kernel's own cookie; tearing the lab down"
    );
    drop(handshake);
    drop(lab);
    Ok(())
}
