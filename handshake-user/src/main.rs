//! The `handshake` command line.

use std::{io::Write as _, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{anyhow, bail};
use clap::{Args, Parser, Subcommand};
use handshake::{
    attach, build_info,
    capture::{self, Limit},
    config_file, interface,
    limit::{self, LimitChange},
    live,
    loader::Mode,
    pins::{DEFAULT_ROOT, PinRoot},
    ports, prefix, privileges,
    rate_limits::{self, FLAGS, Limits},
    run,
    settings::Settings,
    source_lists::List,
    state, stats, top,
};
use handshake_common::sample::Class;

#[derive(Parser)]
#[command(
    name = "handshake",
    version = build_info::VERSION,
    about = "SYN-flood protection at XDP with the kernel's own SYN cookies"
)]
struct Cli {
    /// Where `attach` pins its links and maps (a folder per network namespace, in it one
    /// per interface); must be on a BPF filesystem.
    #[arg(long, global = true, env = "HANDSHAKE_PIN_DIR", default_value = DEFAULT_ROOT)]
    pin_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// What to protect: flags for one interface, or a config file for several.
#[derive(Args)]
struct Protect {
    /// The interface the SYNs arrive on (as `ip link` names it).
    #[arg(long, required_unless_present = "config")]
    iface: Option<String>,
    /// TCP ports to protect: comma-separated ports and ranges (e.g. 80,443,8000-8010).
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
    /// Sources whose TCP to the protected ports passes untouched (prefixes, comma-separated:
    /// 203.0.113.0/24,2001:db8::/32).
    #[arg(long, value_name = "PREFIXES")]
    allow: Vec<String>,
    /// Sources whose TCP to the protected ports is dropped (prefixes, comma-separated).
    #[arg(long, value_name = "PREFIXES")]
    deny: Vec<String>,
    /// Count every verdict but pass every packet (also for each interface of --config);
    /// `handshake dry-run --iface IF off` enforces.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    limits: LimitFlags,
    /// A TOML file naming interfaces, ports, MSS, timestamps, source lists, rate limits
    /// and the metrics address, instead of the flags above.
    #[arg(long, conflicts_with_all = ["iface", "ports", "mss", "timestamps", "allow", "deny",
        "syn_per_source", "syn_per_network", "syn_acks_per_second", "syn_acks_per_destination"])]
    config: Option<PathBuf>,
}

/// The SYN rate limits, each RATE[/BURST] (a second, and the burst above it; default
/// burst: RATE) or `off`. SYNs over a limit are dropped and counted.
#[derive(Args)]
struct LimitFlags {
    /// SYNs a second from one source host (IPv4 /32, IPv6 /64).
    #[arg(long, value_name = "RATE[/BURST]")]
    syn_per_source: Option<String>,
    /// SYNs a second from one source network (IPv4 /24, IPv6 /48).
    #[arg(long, value_name = "RATE[/BURST]")]
    syn_per_network: Option<String>,
    /// SYN-ACKs a second from the interface (SYNs over it are dropped).
    #[arg(long, value_name = "RATE[/BURST]")]
    syn_acks_per_second: Option<String>,
    /// SYN-ACKs a second to one destination network (IPv4 /24, IPv6 /48): the most a
    /// spoofed flood can reflect at a victim.
    #[arg(long, value_name = "RATE[/BURST]")]
    syn_acks_per_destination: Option<String>,
}

impl LimitFlags {
    /// Per flag, in `rate_limits::FLAGS` order: a rate, `off`, or not given.
    fn changes(&self) -> anyhow::Result<[rate_limits::Change; 4]> {
        let texts = [
            &self.syn_per_source,
            &self.syn_per_network,
            &self.syn_acks_per_second,
            &self.syn_acks_per_destination,
        ];
        let mut changes = [None; 4];
        for ((change, flag), text) in changes.iter_mut().zip(FLAGS).zip(texts) {
            *change = rate_limits::parse_change(flag, text.as_deref())?;
        }
        Ok(changes)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Protect ports until Ctrl-C or SIGTERM, printing counters.
    Run {
        #[command(flatten)]
        protect: Protect,
        /// Seconds between counter tables (0.1 to 3600).
        #[arg(long, default_value = "1")]
        interval: String,
        /// Serve Prometheus metrics at http://ADDR:PORT/metrics.
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<String>,
    },
    /// Protect ports and exit; protection stays until `handshake detach`.
    Attach {
        #[command(flatten)]
        protect: Protect,
    },
    /// Remove what `attach` created for an interface, the interfaces of a config file,
    /// every interface attached in this network namespace, or the pins of network
    /// namespaces that are gone.
    Detach {
        /// The interface `attach` protects.
        #[arg(long, required_unless_present_any = ["config", "all", "gone"], conflicts_with_all = ["config", "all", "gone"])]
        iface: Option<String>,
        /// The interfaces this config file names (what `attach --config FILE` attached);
        /// those not attached are skipped with a note.
        #[arg(long, conflicts_with_all = ["all", "gone"])]
        config: Option<PathBuf>,
        /// Every interface attached in this network namespace.
        #[arg(long, conflicts_with = "gone")]
        all: bool,
        /// The pin folders of network namespaces that were deleted (`status` lists them):
        /// they protect nothing and hold kernel memory. Never a namespace alive.
        #[arg(long)]
        gone: bool,
    },
    /// List the interfaces handshake protects in this network namespace, as the kernel
    /// sees them (attached or by `run`), and those whose protection is gone.
    Status {
        /// Machine-readable output (schema in README.md).
        #[arg(long)]
        json: bool,
    },
    /// Change the protected ports of an attached interface, live.
    Ports {
        #[command(subcommand)]
        change: PortsCommand,
    },
    /// Sources whose TCP to the protected ports passes untouched (health checkers, load
    /// balancers), live.
    Allow {
        #[command(subcommand)]
        change: ListCommand,
    },
    /// Sources whose TCP to the protected ports is dropped, live.
    Deny {
        #[command(subcommand)]
        change: ListCommand,
    },
    /// The SYN rate limits per source and the caps on SYN-ACKs, live.
    Limit {
        #[command(subcommand)]
        change: LimitCommand,
    },
    /// Switch dry run on (count every verdict, pass every packet) or off, live.
    DryRun {
        /// The attached interface.
        #[arg(long)]
        iface: String,
        #[arg(value_enum)]
        state: Switch,
    },
    /// Counters of attached interfaces: totals and rates, per interface and port.
    Stats {
        /// Only this interface (default: every attached one).
        #[arg(long)]
        iface: Option<String>,
        /// Redraw every second.
        #[arg(long)]
        watch: bool,
        /// Machine-readable output (schema in README.md).
        #[arg(long)]
        json: bool,
    },
    /// Write frames the XDP program samples (their first 128 bytes) to a pcap file, for
    /// tcpdump or Wireshark. Sampling is on only while it runs.
    Capture {
        /// The attached interface.
        #[arg(long)]
        iface: String,
        /// Which verdicts, comma-separated: answered (syn_ack_sent, sampled as the
        /// SYN-ACK sent), forged (ack_dropped_forged), dropped (every *_dropped_*), all
        /// (every packet to a protected port).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
        verdict: Vec<Verdict>,
        /// Sample 1 in N of those frames (at random).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        sample: u32,
        /// Stop after N frames.
        #[arg(long, value_name = "N", conflicts_with = "seconds")]
        count: Option<u64>,
        /// Stop after S seconds (default: at Ctrl-C).
        #[arg(long, value_name = "S")]
        seconds: Option<f64>,
        /// The pcap file to write.
        #[arg(
            short = 'w',
            long = "write",
            value_name = "FILE.pcap",
            required_unless_present = "stop"
        )]
        write: Option<PathBuf>,
        /// Turn sampling off instead (left on by a capture that was killed with SIGKILL).
        #[arg(long, conflicts_with_all = ["write", "count", "seconds"])]
        stop: bool,
    },
    /// The top source prefixes (/24, /48) and destination ports of the SYNs answered, the
    /// SYNs dropped and the forged ACKs of the last seconds, from sampled frames; redrawn
    /// every second.
    Top {
        /// The attached interface.
        #[arg(long)]
        iface: String,
        /// Sample 1 in N frames to start with (top halves the rate itself above 20000
        /// samples a second, and says so).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        sample: u32,
        /// Over the last S seconds.
        #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
        window: u64,
        /// Stop after S seconds (default: at Ctrl-C).
        #[arg(long, value_name = "S")]
        seconds: Option<f64>,
        /// One JSON document per second.
        #[arg(long)]
        json: bool,
    },
    /// Serve Prometheus metrics for every attached interface.
    Metrics {
        /// Where to serve http://ADDR:PORT/metrics, e.g. 127.0.0.1:9720.
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
    /// Write man pages (DIR/man) and shell completions (DIR/completions) made from this
    /// command line; `cargo xtask package` runs it.
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

#[derive(Subcommand)]
enum PortsCommand {
    /// Protect more ports.
    Add {
        /// The attached interface.
        #[arg(long)]
        iface: String,
        /// Ports and ranges, separated by spaces or commas (e.g. 443 8000-8010).
        #[arg(required = true)]
        ports: Vec<String>,
    },
    /// Stop protecting ports.
    Remove {
        /// The attached interface.
        #[arg(long)]
        iface: String,
        /// Ports and ranges, separated by spaces or commas (e.g. 443 8000-8010).
        #[arg(required = true)]
        ports: Vec<String>,
    },
    /// Show the protected ports.
    List {
        /// The attached interface.
        #[arg(long)]
        iface: String,
    },
}

#[derive(Subcommand)]
enum ListCommand {
    /// Add prefixes (those already there stay).
    Add {
        /// The attached interface.
        #[arg(long)]
        iface: String,
        /// A file of prefixes, one per line (`#` comments): for long lists.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Prefixes or addresses, separated by spaces or commas (e.g. 203.0.113.0/24
        /// 2001:db8::/32).
        #[arg(required_unless_present = "file")]
        prefixes: Vec<String>,
    },
    /// Remove prefixes.
    Remove {
        /// The attached interface.
        #[arg(long)]
        iface: String,
        /// A file of prefixes, one per line (`#` comments).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Prefixes, separated by spaces or commas, exactly as listed.
        #[arg(required_unless_present = "file")]
        prefixes: Vec<String>,
    },
    /// Show the prefixes, one per line.
    List {
        /// The attached interface.
        #[arg(long)]
        iface: String,
    },
}

#[derive(Subcommand)]
enum LimitCommand {
    /// Set the limits given (RATE[/BURST] or `off`); the others stay as they are.
    Set {
        /// The attached interface.
        #[arg(long)]
        iface: String,
        #[command(flatten)]
        limits: LimitFlags,
    },
    /// Show the limits that are on.
    Show {
        /// The attached interface.
        #[arg(long)]
        iface: String,
    },
    /// Switch every limit off.
    Off {
        /// The attached interface.
        #[arg(long)]
        iface: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Verdict {
    Answered,
    Forged,
    Dropped,
    All,
}

impl Verdict {
    fn class(self) -> Class {
        match self {
            Verdict::Answered => Class::Answered,
            Verdict::Forged => Class::Forged,
            Verdict::Dropped => Class::Dropped,
            Verdict::All => Class::All,
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

impl Protect {
    /// The interfaces to protect, and a metrics address from the config file.
    fn settings(self) -> anyhow::Result<(Vec<Settings>, Option<SocketAddr>)> {
        if let Some(path) = self.config {
            let mut file = config_file::load(&path)?;
            if self.dry_run {
                file.interfaces
                    .iter_mut()
                    .for_each(|iface| iface.dry_run = true);
            }
            return Ok((file.interfaces, file.metrics));
        }
        let (Some(iface), Some(ports)) = (self.iface, self.ports) else {
            bail!("give --iface and --ports, or --config FILE");
        };
        interface::check_name(&iface)?;
        let settings = Settings {
            iface,
            ports: ports::parse(&ports)?,
            mode: self.xdp_mode,
            mss: self.mss,
            timestamps: self.timestamps,
            allow: prefix::parse_all(self.allow.iter().map(String::as_str))?,
            deny: prefix::parse_all(self.deny.iter().map(String::as_str))?,
            dry_run: self.dry_run,
            limits: Limits::default().changed(self.limits.changes()?),
        };
        Ok((vec![settings], None))
    }
}

fn main() {
    init_logging();
    let cli = Cli::parse();
    if let Err(error) = execute(cli) {
        eprintln!("handshake: {error:#}");
        std::process::exit(1);
    }
}

/// Log lines read like the errors: "handshake: warning: ...".
fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|out, record| {
            let level = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                log::Level::Info => "",
                log::Level::Debug | log::Level::Trace => "debug: ",
            };
            writeln!(out, "handshake: {level}{}", record.args())
        })
        .init();
}

/// A reader that goes away (`handshake stats --watch | head -1`) ends the command quietly,
/// as it does any Unix tool; Rust ignores SIGPIPE and would panic on the next write
/// instead. Not for `run` and `metrics`, which must go on protecting and serving.
fn end_quietly_on_broken_pipe() {
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `--interval`: a number of seconds a timer can keep (a zero or NaN interval would spin,
/// an infinite one panic).
fn interval(text: &str) -> anyhow::Result<Duration> {
    match text.trim().parse::<f64>() {
        Ok(seconds) if (0.1..=3600.0).contains(&seconds) => Ok(Duration::from_secs_f64(seconds)),
        _ => bail!(
            "--interval {text:?} is not a number of seconds from 0.1 to 3600; give e.g. --interval 1"
        ),
    }
}

fn duration(flag: &str, seconds: f64) -> anyhow::Result<Duration> {
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        bail!("{flag} {seconds} is not a number of seconds from 0 to 86400; give e.g. {flag} 10");
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn socket_address(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    text.parse()
        .map_err(|_| anyhow!("{flag} {text:?} is not ADDR:PORT; give e.g. {flag} 127.0.0.1:9720"))
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    // Commands that read or change pins: root, and the namespace's folder.
    let pins = |what: &str| -> anyhow::Result<PinRoot> {
        privileges::require(what)?;
        PinRoot::new(&cli.pin_dir)
    };
    match cli.command {
        Command::Run {
            protect,
            interval,
            metrics,
        } => run_command(protect, &interval, metrics),
        Command::Attach { protect } => {
            end_quietly_on_broken_pipe();
            let settings = protect.settings()?.0;
            attach::attach(&pins("attaching XDP")?, &settings)
        }
        Command::Detach {
            iface,
            config,
            all,
            gone,
        } => {
            end_quietly_on_broken_pipe();
            let root = pins("detaching")?;
            if gone {
                for line in attach::detach_gone(&root)? {
                    println!("{line}");
                }
                return Ok(());
            }
            detach(&root, iface, config, all)
        }
        Command::Status { json } => {
            end_quietly_on_broken_pipe();
            let root = pins("reading the pinned maps")?;
            if json {
                println!("{}", attach::status_json(&root)?);
            } else {
                print!("{}", attach::status(&root)?);
            }
            Ok(())
        }
        Command::Ports { change } => {
            end_quietly_on_broken_pipe();
            change_ports(&pins("reading and changing the pinned maps")?, change)
        }
        Command::Allow { change } => {
            end_quietly_on_broken_pipe();
            change_list(&pins("changing the pinned maps")?, List::Allow, change)
        }
        Command::Deny { change } => {
            end_quietly_on_broken_pipe();
            change_list(&pins("changing the pinned maps")?, List::Deny, change)
        }
        Command::Limit { change } => {
            end_quietly_on_broken_pipe();
            let root = pins("changing the pinned maps")?;
            let (iface, change) = match change {
                LimitCommand::Set { iface, limits } => (iface, LimitChange::Set(limits.changes()?)),
                LimitCommand::Show { iface } => (iface, LimitChange::Show),
                LimitCommand::Off { iface } => (iface, LimitChange::Off),
            };
            println!("{}", limit::change(&root, &iface, change)?);
            Ok(())
        }
        Command::DryRun { iface, state } => {
            end_quietly_on_broken_pipe();
            let root = pins("changing the pinned maps")?;
            println!(
                "{}",
                live::dry_run(&root, &iface, matches!(state, Switch::On))?
            );
            Ok(())
        }
        Command::Stats { iface, watch, json } => {
            end_quietly_on_broken_pipe();
            let root = pins("reading the pinned maps")?;
            stats::run(&root, iface.as_deref(), watch, json)
        }
        Command::Capture {
            iface,
            verdict,
            sample,
            count,
            seconds,
            write,
            stop,
        } => {
            let root = pins("sampling packets")?;
            if stop {
                println!("{}", capture::stop(&root, &iface)?);
                return Ok(());
            }
            let limit = match (count, seconds) {
                (Some(frames), _) => Limit::Frames(frames),
                (None, Some(text)) => Limit::Duration(duration("--seconds", text)?),
                (None, None) => Limit::Signal,
            };
            let counters = verdict
                .iter()
                .fold(0, |bits, verdict| bits | verdict.class().counters());
            let Some(path) = write else {
                bail!("give -w FILE.pcap");
            };
            println!(
                "{}",
                capture::capture(&root, &iface, counters, sample, limit, &path)?
            );
            Ok(())
        }
        Command::Top {
            iface,
            sample,
            window,
            seconds,
            json,
        } => {
            // No end_quietly_on_broken_pipe: top turns sampling off when its reader goes.
            let root = pins("sampling packets")?;
            let seconds = seconds
                .map(|text| duration("--seconds", text))
                .transpose()?;
            top::run(&root, &iface, sample, window as usize, seconds, json)
        }
        Command::Metrics { listen } => {
            let address = socket_address("--listen", &listen)?;
            let root = pins("reading the pinned maps")?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            // Connection tasks share the pins' reader, on this thread.
            tokio::task::LocalSet::new().block_on(&runtime, handshake::metrics::run(root, address))
        }
        Command::Demo { connections } => handshake::demo::run(connections),
        Command::GenerateDocs { dir } => {
            use clap::CommandFactory as _;
            handshake::docs::generate(Cli::command(), &dir)
        }
    }
}

/// `detach --iface`, `--config` (systemd's stop: the interfaces the unit attached) or
/// `--all` (the package's removal: nothing could detach them once the binary is gone).
fn detach(
    root: &PinRoot,
    iface: Option<String>,
    config: Option<PathBuf>,
    all: bool,
) -> anyhow::Result<()> {
    if let Some(iface) = iface {
        println!("{}", attach::detach(root, &iface)?);
        return Ok(());
    }
    let ifaces = match config {
        // Only the names: an interface deleted since attach must not stop its detach.
        Some(path) => config_file::interface_names(&path)?,
        None if all => root.interfaces()?,
        None => bail!("give --iface IF, --config FILE, --all or --gone"),
    };
    if ifaces.is_empty() {
        println!(
            "handshake protects nothing in this network namespace (no attachments in {})",
            root.path().display()
        );
    }
    for iface in ifaces {
        if !root.has(&iface)? {
            println!("handshake is not attached to {iface}; nothing to detach");
            continue;
        }
        println!("{}", attach::detach(root, &iface)?);
    }
    Ok(())
}

/// `handshake run`: everything checked before anything is loaded.
fn run_command(protect: Protect, seconds: &str, metrics: Option<String>) -> anyhow::Result<()> {
    let interval = interval(seconds)?;
    let metrics = match metrics {
        Some(text) => Some(socket_address("--metrics", &text)?),
        None => None,
    };
    let (settings, file_metrics) = protect.settings()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The metrics server's connection tasks run on this thread (they share the maps).
    tokio::task::LocalSet::new().block_on(
        &runtime,
        run::run(settings, interval, metrics.or(file_metrics)),
    )
}

fn change_ports(root: &PinRoot, change: PortsCommand) -> anyhow::Result<()> {
    let iface = match &change {
        PortsCommand::Add { iface, .. }
        | PortsCommand::Remove { iface, .. }
        | PortsCommand::List { iface } => iface.clone(),
    };
    // Two `ports add` at once would pick the same free slot; they take turns.
    let _lock = root.lock()?;
    let mut pinned = state::protected(root, &iface)?;
    let table = &mut pinned.maps.ports;
    match change {
        PortsCommand::Add { ports: list, .. } => {
            let ports = ports::parse_args(&list)?;
            // What attach refuses, adding refuses too (see host/nat.rs).
            handshake::host::nat::refuse_rewritten_ports(&ports)?;
            table.add(&ports)?;
        }
        PortsCommand::Remove { ports: list, .. } => table.remove(&ports::parse_args(&list)?)?,
        PortsCommand::List { .. } => {}
    }
    println!(
        "{iface}: protected ports {}",
        ports::join(table.list()?.keys())
    );
    Ok(())
}

/// `allow` and `deny`: every prefix is checked before the pins are touched.
fn change_list(root: &PinRoot, list: List, command: ListCommand) -> anyhow::Result<()> {
    let (iface, change) = match command {
        ListCommand::Add {
            iface,
            file,
            prefixes,
        } => (
            iface,
            live::Change::Add(live::prefixes(&prefixes, file.as_ref())?),
        ),
        ListCommand::Remove {
            iface,
            file,
            prefixes,
        } => (
            iface,
            live::Change::Remove(live::prefixes(&prefixes, file.as_ref())?),
        ),
        ListCommand::List { iface } => (iface, live::Change::Show),
    };
    println!("{}", live::change_list(root, &iface, list, change)?);
    Ok(())
}
