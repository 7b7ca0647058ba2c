//! One step of the flood benchmark: one contender, one offered rate. The flood starts,
//! settles, then the legitimate client runs; everything is measured over the client's
//! window (from its first connection to its last answer or timeout).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use handshake::{
    counters::Snapshot,
    lab::{Lab, SERVER_V4, run_in},
};
use handshake_bench::flood::{self, Flood, Returned, Sink};
use handshake_common::counters::ALL;

use super::{
    client::{self, ClientReport},
    contender::{Contender, Setup},
    nginx::PORT,
    system,
};

/// The kernel counters worth a verdict column (see `nstat -az`).
const NSTAT: [&str; 7] = [
    "TcpExtSyncookiesSent",
    "TcpExtSyncookiesRecv",
    "TcpExtSyncookiesFailed",
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtTCPReqQFullDrop",
    "TcpExtTCPReqQFullDoCookies",
];
const SETTLE: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug)]
pub struct Cpus {
    pub generator: usize,
    pub server: usize,
}

pub struct StepPlan {
    pub rate: Option<u64>,
    pub client_rate: u64,
    pub client_duration: Duration,
}

pub struct StepResult {
    pub contender: Contender,
    pub target_rate: Option<u64>,
    pub offered_per_s: f64,
    pub answered_per_s: f64,
    pub server_cpu_s: f64,
    pub window_s: f64,
    pub client: ClientReport,
    pub verdicts: BTreeMap<String, u64>,
    /// handshake's own average run time per packet during the flood (bpf_stats).
    pub xdp_ns_per_packet: Option<f64>,
}

impl StepResult {
    /// Server CPU per answered SYN, in microseconds.
    pub fn cpu_us_per_answer(&self) -> Option<f64> {
        let answered = self.answered_per_s * self.window_s;
        (answered >= 1.0).then(|| 1e6 * self.server_cpu_s / answered)
    }
}

struct Reading {
    at: Instant,
    busy: f64,
    returned: Returned,
    nstat: BTreeMap<String, u64>,
    counters: Option<Snapshot>,
    bpf: Option<(u64, u64)>,
}

fn read(lab: &Lab, setup: &mut Setup, sink: &Sink, cpus: Cpus) -> anyhow::Result<Reading> {
    Ok(Reading {
        at: Instant::now(),
        busy: system::core_busy_seconds(cpus.server)?,
        returned: sink.returned()?,
        nstat: system::nstat(lab, &lab.server)?,
        counters: setup.counters(),
        bpf: setup.bpf_stats(),
    })
}

pub fn run(
    lab: &Lab,
    contender: Contender,
    setup: &mut Setup,
    sink: &Sink,
    plan: &StepPlan,
    cpus: Cpus,
) -> anyhow::Result<StepResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let flood = Flood {
        port: PORT,
        rate: plan.rate,
        packets: flood::generator::MAX_PACKETS,
        duration: SETTLE + plan.client_duration + client::DEADLINE + Duration::from_secs(2),
        stop: stop.clone(),
    };
    let server = SocketAddr::new(SERVER_V4.into(), PORT);
    let (client_rate, client_duration) = (plan.client_rate, plan.client_duration);
    let (before, client, after, report) = thread::scope(|scope| -> anyhow::Result<_> {
        let flooding = scope.spawn(|| {
            system::pin(0, cpus.generator)?;
            flood::send(lab, flood)
        });
        thread::sleep(SETTLE);
        let measured = (|| -> anyhow::Result<_> {
            let before = read(lab, setup, sink, cpus)?;
            let client = run_in(&lab.client, move || {
                let _ = system::pin(0, cpus.generator);
                client::run(server, client_rate, client_duration)
            })?;
            let after = read(lab, setup, sink, cpus)?;
            Ok((before, client, after))
        })();
        stop.store(true, Ordering::Relaxed);
        let report = flooding
            .join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))??;
        let (before, client, after) = measured?;
        Ok((before, client, after, report))
    })?;
    let window_s = (after.at - before.at).as_secs_f64();
    Ok(StepResult {
        contender,
        target_rate: plan.rate,
        offered_per_s: report.sent as f64 / report.elapsed.as_secs_f64().max(1e-9),
        answered_per_s: (after.returned.syn_acks - before.returned.syn_acks) as f64 / window_s,
        server_cpu_s: after.busy - before.busy,
        window_s,
        client,
        verdicts: verdicts(&before, &after),
        xdp_ns_per_packet: match (before.bpf, after.bpf) {
            (Some((t0, n0)), Some((t1, n1))) if n1 > n0 => {
                Some((t1 - t0) as f64 / (n1 - n0) as f64)
            }
            _ => None,
        },
    })
}

fn verdicts(before: &Reading, after: &Reading) -> BTreeMap<String, u64> {
    let mut verdicts = BTreeMap::new();
    for name in NSTAT {
        let delta = after
            .nstat
            .get(name)
            .unwrap_or(&0)
            .saturating_sub(*before.nstat.get(name).unwrap_or(&0));
        verdicts.insert(name.to_owned(), delta);
    }
    verdicts.insert(
        "rst_to_spoofed".into(),
        after.returned.resets - before.returned.resets,
    );
    if let (Some(first), Some(last)) = (&before.counters, &after.counters) {
        let delta = last.since(first);
        for (counter, name, _) in ALL {
            verdicts.insert(format!("handshake_{name}"), delta.get(counter));
        }
    }
    verdicts
}
