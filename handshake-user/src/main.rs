//! The `handshake` command line.

use std::time::Duration;

use clap::{Parser, Subcommand};
use handshake::{
    loader::Mode,
    ports,
    run::{RunOptions, run},
};

#[derive(Parser)]
#[command(
    name = "handshake",
    version,
    about = "SYN-flood protection at XDP with the kernel's own SYN cookies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Protect TCP ports on an interface until Ctrl-C or SIGTERM, printing counters.
    Run {
        /// The interface the SYNs arrive on.
        #[arg(long)]
        iface: String,
        /// TCP ports to protect, comma-separated (e.g. 80,443).
        #[arg(long)]
        ports: String,
        /// native: in the driver; generic: after skb allocation; auto: native, else generic.
        #[arg(long, value_enum, default_value = "auto")]
        xdp_mode: Mode,
        /// The MSS the SYN-ACK advertises for IPv4 (IPv6 gets 20 less); default: the MTU's.
        #[arg(long)]
        mss: Option<u32>,
        /// Carry window scaling and SACK in the SYN-ACK's timestamp (needs
        /// net.ipv4.tcp_timestamps=2).
        #[arg(long)]
        timestamps: bool,
        /// Seconds between counter tables.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
    /// Build a namespace lab, put handshake in front of an echo service, connect, and
    /// show the counters. Touches nothing outside the namespaces it creates.
    Demo {
        /// Connections to make over each of IPv4 and IPv6.
        #[arg(long, default_value_t = 20)]
        connections: u32,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            iface,
            ports,
            xdp_mode,
            mss,
            timestamps,
            interval,
        } => ports::parse(&ports).and_then(|ports| {
            let options = RunOptions {
                iface,
                ports,
                mode: xdp_mode,
                mss,
                timestamps,
                interval: Duration::from_secs_f64(interval.max(0.1)),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(options))
        }),
        Command::Demo { connections } => handshake::demo::run(connections),
    };
    if let Err(error) = result {
        eprintln!("handshake: {error:#}");
        std::process::exit(1);
    }
}
