//! The handshake loader: loads the XDP program, configures it from the command line and
//! the kernel's sysctls, attaches it, and reads its counters.

pub mod commands;
pub mod config_file;
pub mod host;
pub mod lab;
pub mod pcap;
pub mod prefix;
pub mod settings;
pub mod xdp;

// The modules by their own names too, as the commands, the tests and the benchmark use them.
pub use commands::{
    attach, capture, demo, docs, follow_host, limit, live, metrics, ports, run, stats, top, upgrade,
};
pub use host::{interface, kernel_tcp, local_table, mss, namespaces, privileges};
pub use xdp::{
    btf, build_info, counters, gone, kernel_layout, loader, local_routes, maps, pins, port_table,
    prefix_tries, rate_limits, source_lists, state,
};

/// The XDP object handshake-ebpf builds (see build.rs), embedded in the binary.
pub static XDP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/handshake-xdp"));
