//! The benchmark's XDP programs, built as their own object (`handshake-flood`) so that
//! none of them ships inside the product's:
//!
//! - `generator.rs`   `flood`: a SYN flood driven by BPF_PROG_TEST_RUN in live-frames mode;
//! - `sink.rs`        `flood_sink`: counts and drops the SYN-ACKs that come back;
//! - `cookie_only.rs` `cookie_only`: the listener lookup and cookie helper alone, the
//!   floor the microbenchmarks compare handshake's SYN path against.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod cookie_only;
#[cfg(target_arch = "bpf")]
mod generator;
#[cfg(target_arch = "bpf")]
mod sink;

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::programs::XdpContext;

    /// A pointer to a `T` at `offset`, once the verifier can see it fits (`data_end` read
    /// volatile for the same reason as in the product's `headers::ptr_at`).
    #[inline(always)]
    pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
        let start = ctx.data();
        let end = unsafe { core::ptr::read_volatile(&(*ctx.ctx).data_end) } as usize;
        if start + offset + core::mem::size_of::<T>() > end {
            return None;
        }
        Some((start + offset) as *mut T)
    }

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
    panic!("handshake-flood is built for bpfel-unknown-none by handshake-user's build.rs");
}
