//! Builds the benchmark's XDP programs (handshake-bench-ebpf) for bpfel-unknown-none with
//! the nightly toolchain and bpf-linker, as handshake-user's build.rs builds the product's,
//! so `include_bytes_aligned!` can embed them; and the product's program once more with
//! its `count-calls` feature, whose counts the microbenchmark prints per path.
//! AYA_BUILD_SKIP=1 skips this step.

#[path = "../handshake-user/build/bpf_linker.rs"]
mod bpf_linker;
#[path = "../handshake-user/build/xdp.rs"]
mod xdp;

fn main() {
    bpf_linker::put_on_path();
    xdp::exit_on_error(build());
}

fn build() -> anyhow::Result<()> {
    xdp::build(&[
        xdp::Package {
            name: "handshake-bench-ebpf",
            root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/ebpf"),
            features: &[],
        },
        xdp::Package {
            name: "handshake-ebpf",
            root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../handshake-ebpf"),
            features: &["count-calls"],
        },
    ])
}
