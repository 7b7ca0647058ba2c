//! `handshake-bench` (run by `cargo xtask bench [--quick]`): the flood lab and the
//! microbenchmarks of BENCH.md. Everything runs inside namespaces it creates and removes,
//! also on Ctrl-C; floods are bounded in packets and seconds.
//!
//! - `flood/`       the SYN flood and the sink that counts what comes back (this crate's
//!   library, which tests/flood.rs uses too);
//! - `contender.rs` the five set-ups compared; `nginx.rs` the service;
//! - `step.rs`      one contender at one offered rate; `client.rs` the legitimate client;
//! - `micro.rs`     ns per packet through BPF_PROG_TEST_RUN (`frames.rs` builds the input);
//! - `system.rs`    CPU pinning and time, nstat, bpf_stats, Ctrl-C;
//! - `report.rs`, `chart.rs` the table, the JSON and the PNG.

mod chart;
mod client;
mod contender;
mod frames;
mod micro;
mod nginx;
mod report;
mod step;
mod system;

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use handshake::lab::{CLIENT_IFACE, Lab, SERVER_IFACE};
use handshake_bench::flood::{self, Sink};
use serde_json::json;

use self::{
    contender::Contender,
    step::{Cpus, StepPlan, StepResult},
};

#[derive(Parser)]
#[command(
    name = "handshake-bench",
    about = "SYN flood lab and XDP microbenchmarks (see BENCH.md)"
)]
struct Cli {
    /// Two offered rates and short steps: under two minutes.
    #[arg(long)]
    quick: bool,
    /// Only the XDP microbenchmarks (with --quick: fewer calls per path).
    #[arg(long)]
    micro_only: bool,
    /// Where bench.json and bench.png go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Only the microbenchmark paths whose names hold TEXT (repeatable); the baselines
    /// are always timed.
    #[arg(long = "path", value_name = "TEXT")]
    paths: Vec<String>,
    /// Calls per microbenchmark path (default 20000; 3000 with --quick).
    #[arg(long)]
    calls: Option<usize>,
    /// Also time this handshake-xdp object (an earlier build's) on the same frames in the
    /// same run, to measure a change against it.
    #[arg(long, value_name = "OBJECT")]
    against: Option<PathBuf>,
}

struct Plan {
    rates: Vec<Option<u64>>,
    client_rate: u64,
    client_duration: Duration,
    micro_calls: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                rates: vec![Some(50_000), None],
                client_rate: 100,
                client_duration: Duration::from_secs(3),
                micro_calls: 3_000,
            }
        } else {
            Self {
                rates: vec![
                    Some(25_000),
                    Some(50_000),
                    Some(100_000),
                    Some(200_000),
                    None,
                ],
                client_rate: 200,
                client_duration: Duration::from_secs(8),
                micro_calls: 20_000,
            }
        }
    }

    /// Each step: settling, the client's window, its tail, nginx's restart.
    fn estimate(&self) -> Duration {
        let step = Duration::from_millis(500) + self.client_duration + Duration::from_millis(1500);
        step * (self.rates.len() * Contender::ALL.len()) as u32 + Duration::from_secs(10)
    }
}

fn main() {
    if let Err(error) = run() {
        eprintln!("handshake-bench: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    handshake::privileges::require("the benchmark")?;
    system::catch_interrupts();
    let plan = Plan::new(cli.quick);
    let cpus = Cpus {
        generator: 0,
        server: system::cpus().saturating_sub(1),
    };
    eprintln!(
        "handshake-bench{}: {} contenders x {} rates, about {} s; generator and client on CPU {}, server on CPU {}",
        if cli.quick { " --quick" } else { "" },
        Contender::ALL.len(),
        plan.rates.len(),
        plan.estimate().as_secs(),
        cpus.generator,
        cpus.server
    );
    eprintln!("CPU: {}", system::cpu_model());
    for mitigation in system::mitigations() {
        eprintln!("  {mitigation}");
    }
    let _stats = system::BpfStats::enable()?;
    let lab = Lab::create("bench")?;
    flood::route_spoofed_sources(&lab)?;
    let sink = Sink::attach(&lab)?;
    system::threaded_napi(&lab, &lab.client, CLIENT_IFACE)?;
    system::pin_napi_threads(CLIENT_IFACE, cpus.generator)?;

    let selection = micro::Selection {
        calls: cli.calls.unwrap_or(plan.micro_calls),
        paths: cli.paths,
        against: cli.against,
    };
    eprintln!(
        "microbenchmarks: {} interleaved calls per path",
        selection.calls
    );
    let timings = {
        let _nginx = nginx::Nginx::start(&lab, cpus.server)?;
        micro::run(&lab, selection)?
    };
    eprint!("{}", report::micro_table(&timings));
    if cli.micro_only {
        return Ok(());
    }

    eprintln!("\n{}", report::header());
    let mut steps = Vec::new();
    for contender in Contender::ALL {
        let mut setup = contender::set_up(&lab, contender)?;
        // The server veth's NAPI exists once an XDP program is attached, and is made anew
        // with each attach.
        system::threaded_napi(&lab, &lab.server, SERVER_IFACE)?;
        system::pin_napi_threads(SERVER_IFACE, cpus.server)?;
        for &rate in &plan.rates {
            system::check_interrupted()?;
            let _nginx = nginx::Nginx::start(&lab, cpus.server)?;
            let step_plan = StepPlan {
                rate,
                client_rate: plan.client_rate,
                client_duration: plan.client_duration,
            };
            let result = step::run(&lab, contender, &mut setup, &sink, &step_plan, cpus)?;
            eprintln!("{}", report::step_line(&result));
            steps.push(result);
        }
    }
    write_outputs(&cli.out, &steps, &timings)
}

fn write_outputs(
    out: &std::path::Path,
    steps: &[StepResult],
    timings: &[micro::Timing],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let machine = json!({
        "cpus": system::cpus(),
        "cpu": system::cpu_model(),
        "mitigations": system::mitigations(),
        "kernel": kernel.trim(),
    });
    let json_path = out.join("bench.json");
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report::json(machine, steps, timings))?,
    )?;
    let png_path = out.join("bench.png");
    chart::draw(&png_path, steps)?;
    println!("\n{}", report::header());
    for step in steps {
        println!("{}", report::step_line(step));
    }
    println!("\n{}", report::micro_table(timings));
    println!("wrote {} and {}", json_path.display(), png_path.display());
    Ok(())
}
