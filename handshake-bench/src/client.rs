//! The legitimate client: real TCP connections to nginx at a fixed rate, each sending a
//! request and reading the whole reply, with its connect latency in a histogram.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use super::nginx::BODY;

/// A connection that has not completed within this is a failure.
pub const DEADLINE: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct ClientReport {
    pub attempted: u64,
    pub within_1s: u64,
    pub within_3s: u64,
    /// Connect latency in microseconds, of the connections that connected.
    pub connect_us: Histogram<u64>,
}

impl ClientReport {
    pub fn percent(&self, completed: u64) -> f64 {
        if self.attempted == 0 {
            0.0
        } else {
            100.0 * completed as f64 / self.attempted as f64
        }
    }
}

/// Opens `rate` connections per second for `duration`, from the calling thread's
/// namespace (and CPU: threads inherit both), and waits for the last to finish.
pub fn run(server: SocketAddr, rate: u64, duration: Duration) -> ClientReport {
    let (done_tx, done_rx) = mpsc::channel();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let started = Instant::now();
    let mut attempted = 0u64;
    while started.elapsed() < duration {
        let due = started + interval * attempted as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let done = done_tx.clone();
        thread::spawn(move || {
            let _ = done.send(connection(server));
        });
        attempted += 1;
    }
    drop(done_tx);
    let mut report = ClientReport {
        attempted,
        within_1s: 0,
        within_3s: 0,
        connect_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
    };
    for (connect, total) in done_rx {
        if let Some(connect) = connect {
            let _ = report.connect_us.record(connect.as_micros().max(1) as u64);
        }
        if let Some(total) = total {
            report.within_1s += u64::from(total <= Duration::from_secs(1));
            report.within_3s += u64::from(total <= DEADLINE);
        }
    }
    report
}

/// (connect latency, time to the whole reply); None where that step failed.
fn connection(server: SocketAddr) -> (Option<Duration>, Option<Duration>) {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect_timeout(&server, DEADLINE) else {
        return (None, None);
    };
    let connected = started.elapsed();
    let remaining = DEADLINE
        .saturating_sub(connected)
        .max(Duration::from_millis(1));
    let _ = stream.set_read_timeout(Some(remaining));
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
        .is_err()
    {
        return (Some(connected), None);
    }
    let mut reply = Vec::new();
    let complete = stream.read_to_end(&mut reply).is_ok()
        && reply.starts_with(b"HTTP/1.1 200")
        && reply.ends_with(BODY.as_bytes());
    (Some(connected), complete.then(|| started.elapsed()))
}
