//! Builds the XDP program (handshake-ebpf) for bpfel-unknown-none with the nightly
//! toolchain and bpf-linker, so `include_bytes_aligned!` can embed it in the binary.
//! `cargo xtask setup` installs both (bpf-linker into its cache, which `bpf_linker` finds);
//! AYA_BUILD_SKIP=1 skips this step.

#[path = "build/bpf_linker.rs"]
mod bpf_linker;

fn main() -> anyhow::Result<()> {
    bpf_linker::put_on_path();
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../handshake-ebpf");
    let package = aya_build::Package {
        name: "handshake-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
