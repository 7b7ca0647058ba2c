//! The XDP objects: loading and attaching the program, its maps and their pins, and what
//! the kernel says about them.
//!
//! - `loader.rs`: loading the embedded object (with `kernel_layout.rs`'s offsets),
//!   attaching it, pass-through programs for veth peers;
//! - `kernel_layout.rs`, `btf.rs`: where this kernel keeps the listener's settings;
//! - `maps.rs`, `port_table.rs`, `source_lists.rs`, `local_routes.rs` (both on
//!   `prefix_tries.rs`), `counters.rs`: the maps the loader shares with the program;
//! - `rate_limits.rs`: the SYN rate limits in the program's configuration;
//! - `pins.rs`: the pin folders under the BPF filesystem, per network namespace;
//! - `gone.rs`: the folders of network namespaces that are gone;
//! - `state.rs`: whether a pinned attachment still protects anything;
//! - `build_info.rs`: which build of the program this binary holds and an interface runs.

pub mod btf;
pub mod build_info;
pub mod counters;
pub mod gone;
pub mod kernel_layout;
pub mod loader;
pub mod local_routes;
pub mod maps;
pub mod pins;
pub mod port_table;
pub mod prefix_tries;
pub mod rate_limits;
pub mod source_lists;
pub mod state;
