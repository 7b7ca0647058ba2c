//! The handshake loader: loads the XDP program, configures it from the command line and
//! the kernel's sysctls, attaches it, and reads its counters.

pub mod attach;
pub mod btf;
pub mod build_info;
pub mod config_file;
pub mod counters;
pub mod demo;
pub mod docs;
pub mod host;
pub mod interface;
pub mod kernel_layout;
pub mod kernel_tcp;
pub mod lab;
pub mod live;
pub mod loader;
pub mod maps;
pub mod metrics;
pub mod mss;
pub mod pins;
pub mod port_table;
pub mod ports;
pub mod prefix;
pub mod privileges;
pub mod run;
pub mod settings;
pub mod source_lists;
pub mod state;
pub mod stats;

/// The XDP object handshake-ebpf builds (see build.rs), embedded in the binary.
pub static XDP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/handshake-xdp"));
