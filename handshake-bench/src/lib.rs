//! The flood the benchmark sends and the sink that counts what comes back, and the
//! product's program built to count its calls, as a library so that both
//! `handshake-bench` (main.rs and its modules) and the tests use them.

pub mod flood;

/// The product's program built with its `count-calls` feature (see build.rs): what the
/// microbenchmark counts calls with, and another build of the product for tests/upgrade.rs.
pub static COUNTING_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/handshake-xdp"));
