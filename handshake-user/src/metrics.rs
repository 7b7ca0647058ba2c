//! Prometheus metrics over HTTP: `GET /metrics` answers with the counters in the
//! OpenMetrics text format (encoded by prometheus-client), one series per interface, and
//! per interface and port for the per-port verdicts.

use std::time::Duration;

use anyhow::Context as _;
use handshake_common::counters::{ALL, Counter as Verdict};
use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::stats::Sample;

type Labels = Vec<(String, String)>;

/// The exposition of `samples`. Counter names get `_total` from the encoder.
pub fn render(samples: &[Sample]) -> anyhow::Result<String> {
    let mut registry = Registry::default();
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
    Ok(text)
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

pub async fn bind(address: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for metrics on {address} failed; give a free ADDR:PORT such as 127.0.0.1:9720"))
}

/// Answers one HTTP request on `stream` with `body()` for GET /metrics, 404 otherwise.
pub async fn serve(
    mut stream: TcpStream,
    body: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    // A scrape's request is a few hundred bytes; do not let a slow client hold the loop.
    while !request.windows(4).any(|window| window == b"\r\n\r\n") && request.len() < 8192 {
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await??;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&request);
    let line = line.lines().next().unwrap_or_default();
    let (status, content_type, body) = if line.starts_with("GET /metrics ") {
        (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body()?,
        )
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

/// `handshake metrics --listen`: serves the pinned counters of every attached interface.
pub async fn run(root: crate::pins::PinRoot, address: String) -> anyhow::Result<()> {
    let listener = bind(&address).await?;
    println!("serving metrics on http://{address}/metrics");
    loop {
        let (stream, _) = listener.accept().await?;
        let root = root.clone();
        if let Err(error) = serve(stream, || render(&crate::stats::sample(&root, None)?)).await {
            log::warn!("a metrics request failed: {error:#}");
        }
    }
}
