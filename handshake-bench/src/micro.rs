//! Microbenchmarks: ns per packet of each path through handshake's XDP program, timed by
//! BPF_PROG_TEST_RUN in the lab's server namespace (where nginx listens on port 80),
//! beside an XDP_PASS program, a program that only looks up the listener and calls the
//! cookie helper, and one that also writes the least SYN-ACK and sends it. Every program is timed the same way: one run per call (repeat=1), since
//! the kernel reuses one buffer across repeats and a rewritten SYN would be timed as its
//! SYN-ACK; the paths are interleaved call by call and the median is kept, so that noise
//! from the shared machine falls on all of them alike.

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use handshake::{
    XDP_OBJECT,
    kernel_tcp::KernelTcp,
    lab::{CLIENT_V4, CLIENT_V6, Lab, SERVER_V4, SERVER_V6, run_in},
    loader::{Handshake, PASS_PROGRAM},
};
use handshake_bench::{COUNTING_OBJECT, flood::FLOOD_OBJECT};
use handshake_common::{
    config::{Config, LIMIT_DESTINATION, LIMIT_NETWORK, LIMIT_SOURCE, LIMIT_SYN_ACKS},
    counters::ALL,
    flood::CALL_COST_CALLS,
    rate_limit::Rate,
    sample::Class,
};

use super::{
    frames::{self, ACK, LINUX_SYN_OPTIONS, MSS_OPTION, SYN, Segment, WINDOWS_SYN_OPTIONS},
    nginx::PORT,
};

const CLIENT_PORT: u16 = 40000;
const CLIENT_SEQ: u32 = 0x1234_5678;
const UNPROTECTED: u16 = 7070;

/// What to time: the calls per path, which paths, and another build beside this one.
pub struct Selection {
    pub calls: usize,
    /// Only the paths whose names hold one of these (all when empty); the baselines
    /// (`Which::is_baseline`) are always timed.
    pub paths: Vec<String>,
    /// Another build's handshake-xdp object (an earlier commit's, say), timed on the same
    /// frames in the same run, beside this one's call by call: a change's effect measured
    /// with the machine's noise falling on both alike.
    pub against: Option<PathBuf>,
}

impl Selection {
    fn times(&self, path: &str, which: Which) -> bool {
        which.is_baseline()
            || self.paths.is_empty()
            || self
                .paths
                .iter()
                .any(|wanted| path.contains(wanted.as_str()))
    }
}

/// The programs that time one call, and their paths' names (report.rs divides by
/// `CALL_COST_CALLS`).
const HELPER_CALLS: &str = "helper_calls";
const CLOCK_READS: &str = "clock_reads";
const SUBPROGRAM_CALLS: &str = "subprogram_calls";
/// The two floors (handshake-bench-ebpf's cookie_only.rs and cookie_answer.rs), which
/// report.rs finds by these names.
pub const COOKIE_ONLY: &str = "cookie_only";
pub const COOKIE_ANSWER: &str = "cookie_answer";
pub const CALLS_OF_HELPERS: &str = "32 helper calls (bpf_get_numa_node_id)";
pub const CALLS_OF_CLOCK: &str = "32 bpf_ktime_get_ns calls";
pub const CALLS_OF_SUBPROGRAMS: &str = "32 BPF-to-BPF calls";
const _: () = assert!(CALL_COST_CALLS == 32, "the names above say 32");

/// How the other build's paths are named in the table.
pub const AGAINST: &str = "against: ";

pub struct Timing {
    pub path: String,
    pub program: &'static str,
    pub median_ns: f64,
    /// Helper calls, per-CPU map lookups and BPF-to-BPF calls the path made, counted by
    /// the `count-calls` build of the same program, and the verdict counter it moved;
    /// `None` for the baselines.
    pub calls: Option<([u64; 3], &'static str)>,
}

pub fn run(lab: &Lab, selection: Selection) -> anyhow::Result<Vec<Timing>> {
    // A connection that stays open, for the established-flow path.
    let server = SocketAddr::new(SERVER_V4.into(), PORT);
    let established = run_in(&lab.client, move || {
        TcpStream::connect_timeout(&server, Duration::from_secs(3))
    })??;
    let established_port = established.local_addr()?.port();
    // Cookies for every SYN (without tcp_syncookies=2 the helper declines and every path
    // would time that refusal) and timestamps answered; each contender then sets its own.
    lab.cookies_at_xdp()?;
    let result = run_in(&lab.server, move || measure(&selection, established_port));
    drop(established);
    result?
}

struct Programs {
    config: Config,
    handshake: Handshake,
    /// The counting build, configured as `handshake`.
    counting: Counting,
    /// The same while `handshake capture` samples every verdict, and its ring buffer,
    /// drained after each run as capture drains it.
    sampling: Handshake,
    sampling_counting: Counting,
    samples: RingBuf<MapData>,
    /// The same with every rate limit on, at rates no run reaches.
    limiting: Handshake,
    limiting_counting: Counting,
    pass: Ebpf,
    /// `cookie_only` and `cookie_answer`.
    floors: Ebpf,
    /// `helper_calls`, `clock_reads` and `subprogram_calls`: what one call costs here.
    call_cost: Ebpf,
}

fn load() -> anyhow::Result<Programs> {
    let kernel = KernelTcp::read()?;
    // Measured under tcp_timestamps=2, which the program reads per SYN: a SYN that
    // offers TS takes the timestamps path, one that does not the MSS-only path.
    let config = Config {
        mac: frames::SERVER_MAC,
        // As `attach` without --mss: the MSS from the interface's MTU, read per SYN.
        mss_from_mtu: 1,
        ..kernel.config(1460, 1440, true)?
    };
    let mut handshake = Handshake::load()?;
    handshake.set_config(&config)?;
    handshake.set_ports(&[PORT])?;
    let counting = Counting::load(&config)?;
    let sampled = Config {
        sample_counters: Class::All.counters(),
        sample_every: 1,
        ..config
    };
    let mut sampling = Handshake::load()?;
    sampling.set_config(&sampled)?;
    sampling.set_ports(&[PORT])?;
    let samples = sampling.maps.take_samples()?;
    let sampling_counting = Counting::load(&sampled)?;
    let unreached = Rate {
        per_second: 100_000_000,
        burst: 100_000_000,
    };
    let limited = Config {
        limits: LIMIT_SOURCE | LIMIT_NETWORK | LIMIT_SYN_ACKS | LIMIT_DESTINATION,
        syn_per_source: unreached,
        syn_per_network: unreached,
        syn_acks: unreached,
        syn_acks_per_destination: unreached,
        ..config
    };
    let mut limiting = Handshake::load()?;
    limiting.set_config(&limited)?;
    limiting.set_ports(&[PORT])?;
    let limiting_counting = Counting::load(&limited)?;
    let mut pass = Ebpf::load(XDP_OBJECT)?;
    xdp(&mut pass, PASS_PROGRAM)?.load()?;
    let mut floors = Ebpf::load(FLOOD_OBJECT)?;
    for name in [COOKIE_ONLY, COOKIE_ANSWER] {
        xdp(&mut floors, name)?
            .load()
            .with_context(|| format!("the verifier rejected {name}"))?;
    }
    let mut call_cost = Ebpf::load(FLOOD_OBJECT)?;
    for name in [HELPER_CALLS, CLOCK_READS, SUBPROGRAM_CALLS] {
        xdp(&mut call_cost, name)?
            .load()
            .with_context(|| format!("the verifier rejected {name}"))?;
    }
    Ok(Programs {
        config,
        handshake,
        counting,
        sampling,
        sampling_counting,
        samples,
        limiting,
        limiting_counting,
        pass,
        floors,
        call_cost,
    })
}

/// The build given with `--against`, configured as `handshake`.
struct Against {
    handshake: Handshake,
}

impl Against {
    fn load(object: &Path, config: &Config) -> anyhow::Result<Self> {
        let bytes = std::fs::read(object)
            .with_context(|| format!("reading the object to time against, {}", object.display()))?;
        let mut handshake = Handshake::load_object(&bytes, None).with_context(|| {
            format!(
                "loading {} (a handshake-xdp object of a build whose maps and config match this one's)",
                object.display()
            )
        })?;
        handshake.set_config(config)?;
        handshake.set_ports(&[PORT])?;
        Ok(Self { handshake })
    }
}

/// The call-counting build of the program and its `CALLS` map.
struct Counting {
    handshake: Handshake,
    calls: PerCpuArray<MapData, u64>,
}

impl Counting {
    fn load(config: &Config) -> anyhow::Result<Self> {
        let mut handshake = Handshake::load_object(COUNTING_OBJECT, None)?;
        handshake.set_config(config)?;
        handshake.set_ports(&[PORT])?;
        let calls = handshake
            .take_map("CALLS")
            .context("the counting build has no CALLS map")?
            .try_into()?;
        Ok(Self { handshake, calls })
    }

    /// The calls one run of `frame` makes ([helpers, per-CPU lookups, subprograms]) and
    /// the verdict it is counted as.
    fn calls_of(&mut self, frame: &[u8]) -> anyhow::Result<([u64; 3], &'static str)> {
        let sum = |calls: &PerCpuArray<MapData, u64>| -> anyhow::Result<[u64; 3]> {
            let mut sums = [0; 3];
            for (index, sum) in sums.iter_mut().enumerate() {
                *sum = calls.get(&(index as u32), 0)?.iter().sum();
            }
            Ok(sums)
        };
        let run = |handshake: &mut Handshake| -> anyhow::Result<()> {
            handshake.program()?.test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })?;
            Ok(())
        };
        // Once before counting, as the timed runs are: the rate limits' buckets then
        // exist (a bucket is inserted by its first SYN only).
        run(&mut self.handshake)?;
        let (before, counted) = (sum(&self.calls)?, self.handshake.counters()?);
        run(&mut self.handshake)?;
        let after = sum(&self.calls)?;
        let moved = self.handshake.counters()?.since(&counted);
        let verdict = ALL
            .iter()
            .find(|(counter, _, _)| moved.get(*counter) > 0)
            .map_or("none", |(_, name, _)| *name);
        Ok((std::array::from_fn(|i| after[i] - before[i]), verdict))
    }
}

fn xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut Xdp> {
    Ok(ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("no program {name}"))?
        .try_into()?)
}

#[derive(Clone, Copy)]
enum Which {
    Handshake,
    Sampling,
    Limiting,
    Pass,
    CookieOnly,
    CookieAnswer,
    HelperCalls,
    ClockReads,
    SubprogramCalls,
    /// The build given with `--against`.
    Against,
}

impl Which {
    /// What every path is measured against: XDP_PASS, the two floors, one call. Every
    /// program is named here, so a new one is classed (and so counted or not) when added.
    fn is_baseline(self) -> bool {
        match self {
            Which::Pass
            | Which::CookieOnly
            | Which::CookieAnswer
            | Which::HelperCalls
            | Which::ClockReads
            | Which::SubprogramCalls => true,
            Which::Handshake | Which::Sampling | Which::Limiting | Which::Against => false,
        }
    }
}

fn measure(selection: &Selection, established_port: u16) -> anyhow::Result<Vec<Timing>> {
    let mut programs = load()?;
    let (client, server, client6, server6) = (
        CLIENT_V4.octets(),
        SERVER_V4.octets(),
        CLIENT_V6.octets(),
        SERVER_V6.octets(),
    );
    let segment = |source_port, dest_port, seq, ack, flags, options| Segment {
        source_port,
        dest_port,
        seq,
        ack,
        flags,
        options,
    };
    let syn = segment(
        CLIENT_PORT,
        PORT,
        CLIENT_SEQ,
        0,
        SYN,
        &LINUX_SYN_OPTIONS[..],
    );
    let syn_v4 = frames::tcp_v4(client, server, &syn);
    let syn_v6 = frames::tcp_v6(client6, server6, &syn);
    // The same SYN without its timestamp: what Windows and most flood tools send, which
    // the kernel (and handshake) answer with MSS only.
    let mss_only = segment(
        CLIENT_PORT,
        PORT,
        CLIENT_SEQ,
        0,
        SYN,
        &WINDOWS_SYN_OPTIONS[..],
    );
    let mss_only_v4 = frames::tcp_v4(client, server, &mss_only);
    let mss_only_v6 = frames::tcp_v6(client6, server6, &mss_only);
    let cookie = cookie_of(programs.handshake.program()?, &syn_v4, IPV4_LEN)?;
    check_answers(&mut programs, &syn_v4, &syn_v6)?;
    let ack = |ack| {
        frames::tcp_v4(
            client,
            server,
            &segment(CLIENT_PORT, PORT, CLIENT_SEQ + 1, ack, ACK, &[]),
        )
    };
    let established = frames::tcp_v4(
        client,
        server,
        &segment(established_port, PORT, 1, 1, ACK, &[]),
    );
    let unprotected = frames::tcp_v4(
        client,
        server,
        &segment(
            CLIENT_PORT,
            UNPROTECTED,
            CLIENT_SEQ,
            0,
            SYN,
            &LINUX_SYN_OPTIONS[..],
        ),
    );
    let cases: Vec<(&'static str, &'static str, Which, Vec<u8>)> = vec![
        (
            "XDP_PASS baseline (IPv4 SYN)",
            "handshake_pass",
            Which::Pass,
            syn_v4.clone(),
        ),
        (
            "cookie helper alone, IPv4 SYN",
            COOKIE_ONLY,
            Which::CookieOnly,
            syn_v4.clone(),
        ),
        (
            "cookie helper alone, IPv6 SYN",
            COOKIE_ONLY,
            Which::CookieOnly,
            syn_v6.clone(),
        ),
        (
            "cookie helper + fixed MSS-only SYN-ACK, IPv4",
            COOKIE_ANSWER,
            Which::CookieAnswer,
            syn_v4.clone(),
        ),
        (
            "cookie helper + fixed MSS-only SYN-ACK, IPv6",
            COOKIE_ANSWER,
            Which::CookieAnswer,
            syn_v6.clone(),
        ),
        (
            CALLS_OF_HELPERS,
            HELPER_CALLS,
            Which::HelperCalls,
            syn_v4.clone(),
        ),
        (
            CALLS_OF_CLOCK,
            CLOCK_READS,
            Which::ClockReads,
            syn_v4.clone(),
        ),
        (
            CALLS_OF_SUBPROGRAMS,
            SUBPROGRAM_CALLS,
            Which::SubprogramCalls,
            syn_v4.clone(),
        ),
        (
            "SYN -> SYN-ACK, IPv4, MSS only",
            "handshake",
            Which::Handshake,
            mss_only_v4,
        ),
        (
            "SYN -> SYN-ACK, IPv6, MSS only",
            "handshake",
            Which::Handshake,
            mss_only_v6,
        ),
        (
            "SYN -> SYN-ACK, IPv4, timestamps",
            "handshake",
            Which::Handshake,
            syn_v4.clone(),
        ),
        (
            "SYN -> SYN-ACK, IPv6, timestamps",
            "handshake",
            Which::Handshake,
            syn_v6,
        ),
        (
            "valid third ACK",
            "handshake",
            Which::Handshake,
            ack(cookie.wrapping_add(1)),
        ),
        (
            "ACK with an invalid cookie",
            "handshake",
            Which::Handshake,
            ack(cookie ^ 0x00ff_0000),
        ),
        (
            "established-flow packet",
            "handshake",
            Which::Handshake,
            established,
        ),
        (
            "unprotected port",
            "handshake",
            Which::Handshake,
            unprotected,
        ),
        (
            "non-TCP (UDP)",
            "handshake",
            Which::Handshake,
            frames::udp_v4(client, server),
        ),
        (
            "SYN -> SYN-ACK, IPv4, timestamps, sampled",
            "handshake",
            Which::Sampling,
            syn_v4.clone(),
        ),
        (
            "SYN, IPv4, timestamps, 4 rate limits on",
            "handshake",
            Which::Limiting,
            syn_v4,
        ),
    ];
    let mut against = match &selection.against {
        Some(object) => Some(Against::load(object, &programs.config)?),
        None => None,
    };
    let mut cases: Vec<(String, &'static str, Which, Vec<u8>)> = cases
        .into_iter()
        .filter(|(path, _, which, _)| selection.times(path, *which))
        .map(|(path, program, which, frame)| (path.to_owned(), program, which, frame))
        .collect();
    // What runs in a round, in order: each case, and with `--against` the other build's
    // run of the same frame beside it, first in every other round: in a fixed order the
    // second of two runs measurably comes out slower, whichever build it is.
    let mut rounds: Vec<(usize, Option<usize>)> = (0..cases.len()).map(|own| (own, None)).collect();
    if against.is_some() {
        for own in 0..cases.len() {
            let (path, _, which, frame) = &cases[own];
            if matches!(which, Which::Handshake) {
                let theirs = (
                    format!("{AGAINST}{path}"),
                    "against",
                    Which::Against,
                    frame.clone(),
                );
                rounds[own].1 = Some(cases.len());
                cases.push(theirs);
            }
        }
    }
    let calls = selection.calls;
    let mut samples = vec![Vec::with_capacity(calls); cases.len()];
    for round in 0..calls {
        let order = rounds.iter().flat_map(|&(own, theirs)| match theirs {
            Some(theirs) if round % 2 == 1 => [Some(theirs), Some(own)],
            theirs => [Some(own), theirs],
        });
        for index in order.flatten() {
            let (_, _, which, frame) = &cases[index];
            let program = match which {
                Which::Handshake => programs.handshake.program()?,
                Which::Sampling => programs.sampling.program()?,
                Which::Limiting => programs.limiting.program()?,
                Which::Pass => xdp(&mut programs.pass, PASS_PROGRAM)?,
                Which::CookieOnly => xdp(&mut programs.floors, COOKIE_ONLY)?,
                Which::CookieAnswer => xdp(&mut programs.floors, COOKIE_ANSWER)?,
                Which::HelperCalls => xdp(&mut programs.call_cost, HELPER_CALLS)?,
                Which::ClockReads => xdp(&mut programs.call_cost, CLOCK_READS)?,
                Which::SubprogramCalls => xdp(&mut programs.call_cost, SUBPROGRAM_CALLS)?,
                Which::Against => match against.as_mut() {
                    Some(against) => against.handshake.program()?,
                    None => unreachable!("against's paths are only added when it is loaded"),
                },
            };
            let result = program.test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::new()
            })?;
            samples[index].push(result.duration.as_nanos() as u64);
            if let Which::Sampling = which {
                while programs.samples.next().is_some() {}
            }
        }
    }
    let mut timings = Vec::with_capacity(cases.len());
    for ((path, program, which, frame), mut samples) in cases.into_iter().zip(samples) {
        samples.sort_unstable();
        let calls = match which {
            Which::Handshake => Some(programs.counting.calls_of(&frame)?),
            Which::Sampling => Some(programs.sampling_counting.calls_of(&frame)?),
            Which::Limiting => Some(programs.limiting_counting.calls_of(&frame)?),
            // The baselines (`is_baseline` names each) are not handshake, and the other
            // build has no counting build.
            _ => None,
        };
        timings.push(Timing {
            path,
            program,
            median_ns: samples[samples.len() / 2] as f64,
            calls,
        });
    }
    Ok(timings)
}

const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;

/// The cookie in the SYN-ACK handshake makes of `syn`, behind an IP header of `ip_len`.
fn cookie_of(program: &mut Xdp, syn: &[u8], ip_len: usize) -> anyhow::Result<u32> {
    let (_, out) = answer_of(program, syn)?;
    let seq = 14 + ip_len + 4;
    Ok(u32::from_be_bytes(out[seq..seq + 4].try_into()?))
}

/// What `program` returns for `frame`, and the frame it leaves.
fn answer_of(program: &mut Xdp, frame: &[u8]) -> anyhow::Result<(u32, Vec<u8>)> {
    let mut out = vec![0u8; frame.len() + 64];
    let result = program.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..TestRunOptions::new()
    })?;
    out.truncate(result.data_size_out as usize);
    Ok((result.return_value, out))
}

/// `cookie_answer` is a floor only if it does the work it claims: before it is timed, its
/// answer to each SYN must be, byte for byte, the MSS-only SYN-ACK frames.rs builds with
/// the cookie of handshake's own answer (taken before and after it, and taken again if a
/// cookie minute turned in between).
fn check_answers(programs: &mut Programs, syn_v4: &[u8], syn_v6: &[u8]) -> anyhow::Result<()> {
    const XDP_TX: u32 = 3;
    let expected = |ip_len, cookie| {
        let reply = Segment {
            source_port: PORT,
            dest_port: CLIENT_PORT,
            seq: cookie,
            ack: CLIENT_SEQ + 1,
            flags: SYN | ACK,
            options: &MSS_OPTION,
        };
        let mut frame = if ip_len == IPV4_LEN {
            frames::tcp_v4(SERVER_V4.octets(), CLIENT_V4.octets(), &reply)
        } else {
            frames::tcp_v6(SERVER_V6.octets(), CLIENT_V6.octets(), &reply)
        };
        // frames.rs addresses every frame to the server's MAC; the answer goes back.
        let (to, from) = frame.split_at_mut(6);
        to.swap_with_slice(&mut from[..6]);
        frame
    };
    for (syn, ip_len) in [(syn_v4, IPV4_LEN), (syn_v6, IPV6_LEN)] {
        let mut checked = false;
        for _attempt in 0..2 {
            let before = cookie_of(programs.handshake.program()?, syn, ip_len)?;
            let answer = answer_of(xdp(&mut programs.floors, COOKIE_ANSWER)?, syn)?;
            if cookie_of(programs.handshake.program()?, syn, ip_len)? != before {
                continue;
            }
            let (action, left) = answer;
            let frame = expected(ip_len, before);
            if action != XDP_TX || left != frame {
                return Err(anyhow!(
                    "{COOKIE_ANSWER} returned {action} and left {left:02x?}, not XDP_TX (3) and \
                     {frame:02x?}"
                ));
            }
            checked = true;
            break;
        }
        anyhow::ensure!(
            checked,
            "the cookie changed twice while {COOKIE_ANSWER} was checked"
        );
    }
    Ok(())
}
