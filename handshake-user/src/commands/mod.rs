//! One file per subcommand (or family of subcommands) of `handshake`:
//!
//! - `attach.rs`: `attach`, `detach` and `status`, protection kept by pins;
//! - `upgrade.rs`: `attach` over another build's program, replacing it in place;
//! - `run.rs`: `run`, protection for as long as the command runs;
//! - `follow_host.rs`: what `run` keeps current from the host while it runs;
//! - `ports.rs`: `ports add|remove|list` on an attached interface;
//! - `live.rs`: `allow`, `deny` and `dry-run` on an attached interface;
//! - `limit.rs`: `limit set|show|off`, the SYN rate limits of an attached interface;
//! - `stats.rs`: `stats` (and `--watch`);
//! - `capture.rs`: `capture`, packet samples into a pcap file (and the sampling `top` shares);
//! - `top.rs`: `top`, the top sources and ports of what is answered and dropped;
//! - `metrics.rs`: `metrics` and `run --metrics`, the Prometheus exporter;
//! - `demo.rs`: `demo`, a lab of namespaces to see it work;
//! - `docs.rs`: `generate-docs` (hidden), man pages and completions.

pub mod attach;
pub mod capture;
pub mod demo;
pub mod docs;
pub mod follow_host;
pub mod limit;
pub mod live;
pub mod metrics;
pub mod ports;
pub mod run;
pub mod stats;
pub mod top;
pub mod upgrade;
