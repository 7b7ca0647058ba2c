//! The results on the terminal and as JSON.

use std::fmt::Write as _;

use handshake_common::flood::CALL_COST_CALLS;
use serde_json::{Value, json};

use super::{
    micro::{
        AGAINST, CALLS_OF_CLOCK, CALLS_OF_HELPERS, CALLS_OF_SUBPROGRAMS, COOKIE_ANSWER,
        COOKIE_ONLY, Timing,
    },
    step::StepResult,
};

pub fn rate_label(rate: Option<u64>) -> String {
    rate.map_or_else(|| "max".to_owned(), |rate| format!("{}k", rate / 1000))
}

fn quantile_ms(step: &StepResult, quantile: f64) -> f64 {
    if step.client.connect_us.is_empty() {
        return f64::NAN;
    }
    step.client.connect_us.value_at_quantile(quantile) as f64 / 1000.0
}

pub fn step_line(step: &StepResult) -> String {
    let cpu = step
        .cpu_us_per_answer()
        .map_or_else(|| "-".to_owned(), |us| format!("{us:.2}"));
    format!(
        "{:<24} {:>5} {:>9.0} {:>9.0} {:>8} {:>7.1} {:>7.1} {:>8.2} {:>8.2}",
        step.contender.name(),
        rate_label(step.target_rate),
        step.offered_per_s,
        step.answered_per_s,
        cpu,
        step.client.percent(step.client.within_1s),
        step.client.percent(step.client.within_3s),
        quantile_ms(step, 0.5),
        quantile_ms(step, 0.99),
    )
}

pub fn header() -> String {
    format!(
        "{:<24} {:>5} {:>9} {:>9} {:>8} {:>7} {:>7} {:>8} {:>8}",
        "contender",
        "rate",
        "offered/s",
        "answered/s",
        "cpu µs/SA",
        "≤1s %",
        "≤3s %",
        "p50 ms",
        "p99 ms"
    )
}

/// The microbenchmark table: ns per path, over XDP_PASS, as ratios of the cookie helper
/// alone (the floor every answer pays) and of the cookie helper with the least SYN-ACK
/// written (the floor of answering), and the calls each path makes.
pub fn micro_table(timings: &[Timing]) -> String {
    let pass = timings.first().map_or(0.0, |timing| timing.median_ns);
    let floor = |program: &str, ipv6: bool| {
        let family = if ipv6 { "IPv6" } else { "IPv4" };
        timings
            .iter()
            .find(|timing| timing.program == program && timing.path.contains(family))
            .map_or(f64::NAN, |timing| timing.median_ns)
    };
    let mut text = format!(
        "{:<48} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  {}\n",
        "path (BPF_PROG_TEST_RUN, repeat=1)",
        "ns",
        "over PASS",
        "/ floor",
        "/ answer",
        "helpers",
        "percpu",
        "bpf2bpf",
        "verdict"
    );
    for timing in timings {
        let ipv6 = timing.path.contains("IPv6");
        let ratio = |program: &str| format!("{:.2}x", timing.median_ns / floor(program, ipv6));
        let answers = timing
            .path
            .trim_start_matches(AGAINST)
            .starts_with("SYN -> SYN-ACK");
        let (over_floor, over_answer) = if answers {
            (ratio(COOKIE_ONLY), ratio(COOKIE_ANSWER))
        } else if timing.program == COOKIE_ANSWER {
            (ratio(COOKIE_ONLY), String::new())
        } else {
            Default::default()
        };
        let ([helpers, percpu, subprograms], verdict) = match timing.calls {
            Some((calls, verdict)) => (calls.map(|n| n.to_string()), verdict),
            None => (Default::default(), ""),
        };
        let _ = writeln!(
            text,
            "{:<48} {:>6.0} {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>8}  {}",
            timing.path,
            timing.median_ns,
            timing.median_ns - pass,
            over_floor,
            over_answer,
            helpers,
            percpu,
            subprograms,
            verdict
        );
    }
    text.push_str(
        "helpers: helper calls; percpu: per-CPU map lookups (helper calls before Linux 6.10);\n\
         bpf2bpf: BPF-to-BPF calls and bpf_loop callbacks. / floor: over the cookie helper alone;\n\
         / answer: over the cookie helper with a fixed MSS-only SYN-ACK written and sent.\n",
    );
    let per_call = |path: &str| {
        timings
            .iter()
            .find(|timing| timing.path == path)
            .map(|timing| (timing.median_ns - pass) / f64::from(CALL_COST_CALLS))
    };
    if let (Some(helper), Some(subprogram), Some(clock)) = (
        per_call(CALLS_OF_HELPERS),
        per_call(CALLS_OF_SUBPROGRAMS),
        per_call(CALLS_OF_CLOCK),
    ) {
        let _ = writeln!(
            text,
            "one call on this host: {helper:.1} ns a helper call, {subprogram:.1} ns a BPF-to-BPF \
             call, {clock:.1} ns a bpf_ktime_get_ns"
        );
    }
    text
}

pub fn json(machine: Value, steps: &[StepResult], timings: &[Timing]) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|step| {
            json!({
                "contender": step.contender.key(),
                "target_rate": step.target_rate,
                "offered_syn_per_s": step.offered_per_s,
                "answered_syn_ack_per_s": step.answered_per_s,
                "server_cpu_s": step.server_cpu_s,
                "window_s": step.window_s,
                "server_cpu_us_per_answered_syn": step.cpu_us_per_answer(),
                "legit_attempted": step.client.attempted,
                "legit_within_1s_pct": step.client.percent(step.client.within_1s),
                "legit_within_3s_pct": step.client.percent(step.client.within_3s),
                "connect_p50_ms": quantile_ms(step, 0.5),
                "connect_p99_ms": quantile_ms(step, 0.99),
                "xdp_ns_per_packet_during_flood": step.xdp_ns_per_packet,
                "verdicts": step.verdicts,
            })
        })
        .collect();
    let micro: Vec<Value> = timings
        .iter()
        .map(|timing| json!({"path": timing.path, "program": timing.program, "median_ns": timing.median_ns}))
        .collect();
    json!({"machine": machine, "flood": steps, "microbenchmarks": micro})
}
