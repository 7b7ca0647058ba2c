//! The `handshake` command line.

use std::{path::PathBuf, time::Duration};

use anyhow::{anyhow, bail};
use clap::{Args, Parser, Subcommand};
use handshake::{
    attach, config_file,
    loader::Mode,
    maps::Maps,
    pins::{DEFAULT_ROOT, PinRoot},
    ports, run,
    settings::Settings,
    stats,
};

#[derive(Parser)]
#[command(
    name = "handshake",
    version,
    about = "SYN-flood protection at XDP with the kernel's own SYN cookies"
)]
struct Cli {
    /// Where `attach` pins its links and maps (one folder per interface).
    #[arg(long, global = true, env = "HANDSHAKE_PIN_DIR", default_value = DEFAULT_ROOT)]
    pin_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// What to protect: flags for one interface, or a config file for several.
#[derive(Args)]
struct Protect {
    /// The interface the SYNs arrive on.
    #[arg(long, required_unless_present = "config")]
    iface: Option<String>,
    /// TCP ports to protect, comma-separated (e.g. 80,443).
    #[arg(long, required_unless_present = "config")]
    ports: Option<String>,
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
    /// A TOML file naming interfaces, ports, MSS, timestamps and the metrics address,
    /// instead of the flags above.
    #[arg(long, conflicts_with_all = ["iface", "ports", "mss", "timestamps"])]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Protect ports until Ctrl-C or SIGTERM, printing counters.
    Run {
        #[command(flatten)]
        protect: Protect,
        /// Seconds between counter tables.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Serve Prometheus metrics at http://ADDR:PORT/metrics.
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<String>,
    },
    /// Protect ports and exit; protection stays until `handshake detach`.
    Attach {
        #[command(flatten)]
        protect: Protect,
    },
    /// Remove what `attach` created for an interface.
    Detach {
        #[arg(long)]
        iface: String,
    },
    /// List the interfaces handshake protects.
    Status,
    /// Change the protected ports of an attached interface, live.
    Ports {
        #[command(subcommand)]
        change: PortsCommand,
    },
    /// Counters of attached interfaces: totals and rates, per interface and port.
    Stats {
        #[arg(long)]
        iface: Option<String>,
        /// Redraw every second.
        #[arg(long)]
        watch: bool,
        /// Machine-readable output (schema in README.md).
        #[arg(long)]
        json: bool,
    },
    /// Serve Prometheus metrics for every attached interface.
    Metrics {
        #[arg(long, value_name = "ADDR:PORT")]
        listen: String,
    },
    /// Build a namespace lab, put handshake in front of an echo service, connect, and
    /// show the counters. Touches nothing outside the namespaces it creates.
    Demo {
        /// Connections to make over each of IPv4 and IPv6.
        #[arg(long, default_value_t = 20)]
        connections: u32,
    },
}

#[derive(Subcommand)]
enum PortsCommand {
    /// Protect more ports.
    Add {
        #[arg(long)]
        iface: String,
        #[arg(required = true)]
        ports: Vec<String>,
    },
    /// Stop protecting ports.
    Remove {
        #[arg(long)]
        iface: String,
        #[arg(required = true)]
        ports: Vec<String>,
    },
    /// Show the protected ports.
    List {
        #[arg(long)]
        iface: String,
    },
}

impl Protect {
    /// The interfaces to protect, and a metrics address from the config file.
    fn settings(self) -> anyhow::Result<(Vec<Settings>, Option<String>)> {
        if let Some(path) = self.config {
            let file = config_file::load(&path)?;
            return Ok((file.interfaces, file.metrics));
        }
        let (Some(iface), Some(ports)) = (self.iface, self.ports) else {
            bail!("give --iface and --ports, or --config FILE");
        };
        let settings = Settings {
            iface,
            ports: ports::parse(&ports)?,
            mode: self.xdp_mode,
            mss: self.mss,
            timestamps: self.timestamps,
        };
        Ok((vec![settings], None))
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if let Err(error) = execute(cli) {
        eprintln!("handshake: {error:#}");
        std::process::exit(1);
    }
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    let root = PinRoot::new(cli.pin_dir);
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    match cli.command {
        Command::Run {
            protect,
            interval,
            metrics,
        } => {
            let (settings, file_metrics) = protect.settings()?;
            let interval = Duration::from_secs_f64(interval.max(0.1));
            runtime()?.block_on(run::run(settings, interval, metrics.or(file_metrics)))
        }
        Command::Attach { protect } => attach::attach(&root, &protect.settings()?.0),
        Command::Detach { iface } => {
            attach::detach(&root, &iface)?;
            println!("handshake no longer protects {iface}");
            Ok(())
        }
        Command::Status => {
            print!("{}", attach::status(&root)?);
            Ok(())
        }
        Command::Ports { change } => change_ports(&root, change),
        Command::Stats { iface, watch, json } => stats::run(&root, iface.as_deref(), watch, json),
        Command::Metrics { listen } => runtime()?.block_on(handshake::metrics::run(root, listen)),
        Command::Demo { connections } => handshake::demo::run(connections),
    }
}

fn change_ports(root: &PinRoot, change: PortsCommand) -> anyhow::Result<()> {
    let iface = match &change {
        PortsCommand::Add { iface, .. }
        | PortsCommand::Remove { iface, .. }
        | PortsCommand::List { iface } => iface.clone(),
    };
    let dir = root.iface_dir(&iface);
    if !dir.exists() {
        return Err(anyhow!(
            "handshake is not attached to {iface}; `handshake attach --iface {iface} --ports ...` first"
        ));
    }
    let mut maps = Maps::from_pins(&dir)?;
    match change {
        PortsCommand::Add { ports, .. } => maps.ports.add(&ports::parse_args(&ports)?)?,
        PortsCommand::Remove { ports, .. } => maps.ports.remove(&ports::parse_args(&ports)?)?,
        PortsCommand::List { .. } => {}
    }
    println!(
        "{iface}: protected ports {}",
        ports::join(maps.ports.list()?.keys())
    );
    Ok(())
}
