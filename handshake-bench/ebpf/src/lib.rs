//! Empty on purpose: the programs are the `handshake-flood` binary (main.rs). A library
//! lets handshake-bench name this crate as a build-dependency, so cargo rebuilds the
//! benchmark when these programs or what they use (handshake-ebpf, handshake-common)
//! change.
#![no_std]
