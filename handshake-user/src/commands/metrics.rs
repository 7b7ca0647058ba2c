//! Prometheus metrics over HTTP: `GET /metrics` answers with the counters in the
//! OpenMetrics text format (encoded by prometheus-client), one series per interface, and
//! per interface and port for the per-port verdicts.

use std::{net::SocketAddr, rc::Rc, time::Duration};

use anyhow::Context as _;
use handshake_common::counters::{ALL, Counter as Verdict};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::{
    pins::PinRoot,
    stats::{Gone, Sample},
};

type Labels = Vec<(String, String)>;

/// How long one connection may take, request and answer: a client that sends a byte now and
/// then is cut off, and holds nothing else meanwhile (each connection has its own task).
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);

/// Builds the exposition on each scrape.
pub type Render = Rc<dyn Fn() -> anyhow::Result<String>>;

/// The exposition of `samples`, and `handshake_protected` 1 for them and 0 for `gone`.
/// Counter names get `_total` from the encoder.
pub fn render(samples: &[Sample], gone: &[Gone]) -> anyhow::Result<String> {
    let mut registry = Registry::default();
    let protected = Family::<Labels, Gauge>::default();
    for (iface, value) in samples
        .iter()
        .map(|sample| (&sample.iface, 1))
        .chain(gone.iter().map(|gone| (&gone.iface, 0)))
    {
        protected
            .get_or_create(&vec![("iface".to_owned(), iface.clone())])
            .set(value);
    }
    let dry_run = Family::<Labels, Gauge>::default();
    for sample in samples {
        dry_run
            .get_or_create(&vec![("iface".to_owned(), sample.iface.clone())])
            .set(i64::from(sample.dry_run));
    }
    registry.register(
        "handshake_dry_run",
        "1 while the interface is in dry run: every verdict counted, every packet passed",
        dry_run,
    );
    registry.register(
        "handshake_protected",
        "1 while the interface runs handshake's XDP program; 0 when its pins protect nothing (interface recreated, link detached)",
        protected,
    );
    for (verdict, name, help) in ALL {
        let family = Family::<Labels, Counter>::default();
        for sample in samples {
            match per_port(verdict) {
                Some(value) => {
                    for (port, counters) in &sample.ports {
                        let labels = vec![
                            ("iface".to_owned(), sample.iface.clone()),
                            ("port".to_owned(), port.to_string()),
                        ];
                        family.get_or_create(&labels).inc_by(value(counters));
                    }
                }
                None => {
                    family
                        .get_or_create(&vec![("iface".to_owned(), sample.iface.clone())])
                        .inc_by(sample.counters.get(verdict));
                }
            }
        }
        registry.register(format!("handshake_{name}"), help, family);
    }
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(sort_series(&text))
}

/// prometheus-client keeps a family's series in a hash map; sort them (by interface, then
/// port number) so that every scrape reads the same way.
fn sort_series(text: &str) -> String {
    fn label<'a>(line: &'a str, name: &str) -> &'a str {
        line.split_once(&format!("{name}=\""))
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or("", |(value, _)| value)
    }
    let mut sorted = String::new();
    let mut series: Vec<&str> = Vec::new();
    let flush = |series: &mut Vec<&str>, sorted: &mut String| {
        series.sort_by_cached_key(|line| {
            let port: u32 = label(line, "port").parse().unwrap_or(0);
            (label(line, "iface").to_owned(), port)
        });
        for line in series.drain(..) {
            sorted.push_str(line);
            sorted.push('\n');
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut series, &mut sorted);
            sorted.push_str(line);
            sorted.push('\n');
        } else {
            series.push(line);
        }
    }
    flush(&mut series, &mut sorted);
    sorted
}

/// The verdicts exported per port (their interface totals are the sum over ports).
fn per_port(verdict: Verdict) -> Option<fn(&handshake_common::counters::PortCounters) -> u64> {
    match verdict {
        Verdict::SynAckSent => Some(|c| c.syn_ack_sent),
        Verdict::AckValidated => Some(|c| c.ack_validated),
        Verdict::AckDroppedForged => Some(|c| c.ack_dropped_forged),
        _ => None,
    }
}

pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for metrics on {address} failed; give a free ADDR:PORT such as 127.0.0.1:9720"))
}

/// Serves every connection to `listener` on a task of its own, forever; an error of one
/// connection, or of `accept` (e.g. out of file descriptors), is logged and the server
/// goes on. Runs inside a `LocalSet` (the tasks share `render`, which reads the maps).
pub async fn serve_forever(listener: TcpListener, render: Render) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                log::warn!("accepting a metrics connection failed ({error}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::task::spawn_local(async move {
            match tokio::time::timeout(CONNECTION_DEADLINE, serve(stream, &*render)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => log::debug!("a metrics connection failed: {error:#}"),
                Err(_) => log::debug!("a metrics client was too slow; closed its connection"),
            }
        });
    }
}

/// Answers one HTTP request on `stream`: `render()` for GET /metrics, 404 otherwise.
async fn serve(
    mut stream: TcpStream,
    render: &dyn Fn() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") && request.len() < 8192 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&request);
    let line = line.lines().next().unwrap_or_default();
    let (status, content_type, body) = if line.starts_with("GET /metrics ") {
        match render() {
            Ok(body) => (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            ),
            Err(error) => {
                log::warn!("reading the counters for a scrape failed: {error:#}");
                (
                    "500 Internal Server Error",
                    "text/plain",
                    format!("reading the counters failed: {error:#}\n"),
                )
            }
        }
    } else {
        (
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n".to_owned(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(())
}

/// `handshake metrics --listen`: serves the pinned counters of every attached interface
/// of this network namespace. Runs inside a `LocalSet`.
pub async fn run(root: PinRoot, address: SocketAddr) -> anyhow::Result<()> {
    // Read once before saying "serving": an error here (permissions, stale pins) is the
    // operator's to see now, not in every scrape.
    crate::stats::sample(&root, None)?;
    let listener = bind(address).await?;
    println!("serving metrics on http://{address}/metrics");
    let render: Render = Rc::new(move || {
        let (samples, gone) = crate::stats::sample(&root, None)?;
        render(&samples, &gone)
    });
    serve_forever(listener, render).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use handshake_common::counters::PortCounters;

    use super::*;
    use crate::counters::Snapshot;

    #[test]
    fn series_come_sorted_by_interface_then_port() {
        let ports: BTreeMap<u16, PortCounters> = [9, 80, 443, 1000, 8080, 65535]
            .into_iter()
            .map(|port| (port, PortCounters::default()))
            .collect();
        let samples: Vec<Sample> = ["eth1", "eth0"]
            .into_iter()
            .map(|iface| Sample {
                iface: iface.to_owned(),
                counters: Snapshot::default(),
                ports: ports.clone(),
                dry_run: false,
                limits: Default::default(),
            })
            .collect();
        let gone = [Gone {
            iface: "a0".to_owned(),
            problem: String::new(),
        }];
        let text = render(&samples, &gone).unwrap();
        let series: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("handshake_syn_ack_sent_total"))
            .collect();
        let expected: Vec<String> = ["eth0", "eth1"]
            .into_iter()
            .flat_map(|iface| {
                [9, 80, 443, 1000, 8080, 65535].map(|port| {
                    format!("handshake_syn_ack_sent_total{{iface=\"{iface}\",port=\"{port}\"}} 0")
                })
            })
            .collect();
        assert_eq!(series, expected);
        let protected: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("handshake_protected"))
            .collect();
        assert_eq!(
            protected,
            [
                "handshake_protected{iface=\"a0\"} 0",
                "handshake_protected{iface=\"eth0\"} 1",
                "handshake_protected{iface=\"eth1\"} 1"
            ]
        );
    }
}
