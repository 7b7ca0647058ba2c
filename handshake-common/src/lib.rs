//! What the XDP program and the `handshake` loader must agree on.
//!
//! Everything here is `#![no_std]`, `#[repr(C)]` where it crosses the map boundary, and the
//! pure functions (option parsing, checksums, the SYN-ACK layout) are unit-tested on the
//! host: the XDP program calls the very same code.
#![no_std]

pub mod checksum;
pub mod config;
pub mod counters;
pub mod flood;
pub mod listener;
pub mod martian;
pub mod rate_limit;
pub mod sample;
pub mod syn_ack;
pub mod syn_options;
pub mod tcp;
