//! Builds the benchmark's XDP programs (handshake-bench-ebpf) for bpfel-unknown-none with
//! the nightly toolchain and bpf-linker, as handshake-user's build.rs builds the product's,
//! so `include_bytes_aligned!` can embed them. AYA_BUILD_SKIP=1 skips this step.

fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ebpf");
    let package = aya_build::Package {
        name: "handshake-bench-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
