//! The benchmark's XDP programs, built as their own object (`handshake-flood`) so that
//! none of them ships inside the product's:
//!
//! - `generator.rs`   `flood`: a SYN flood driven by BPF_PROG_TEST_RUN in live-frames mode;
//! - `sink.rs`        `flood_sink`: counts and drops the SYN-ACKs that come back;
//! - `cookie_only.rs` `cookie_only`: the listener lookup and cookie helper alone, the
//!   floor the microbenchmarks compare handshake's SYN path against;
//! - `cookie_answer.rs` `cookie_answer`: the same with the least SYN-ACK written and sent,
//!   the floor of any program that answers;
//! - `call_cost.rs`   `helper_calls`, `subprogram_calls`, `clock_reads`: what one call costs
//!   on this host.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod call_cost;
#[cfg(target_arch = "bpf")]
mod cookie_answer;
#[cfg(target_arch = "bpf")]
mod cookie_only;
#[cfg(target_arch = "bpf")]
mod generator;
#[cfg(target_arch = "bpf")]
mod sink;

#[cfg(target_arch = "bpf")]
mod program {
    pub use handshake_ebpf::ptr_at;

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }

    /// The socket and cookie helpers are GPL-only.
    #[unsafe(link_section = "license")]
    #[unsafe(no_mangle)]
    static LICENSE: [u8; 4] = *b"GPL\0";
}

#[cfg(not(target_arch = "bpf"))]
fn main() {
    panic!("handshake-flood is built for bpfel-unknown-none by handshake-bench's build.rs");
}
