//! The flood the benchmark sends and the sink that counts what comes back, as a library
//! so that both `handshake-bench` (main.rs and its modules) and tests/flood.rs use them.

pub mod flood;
