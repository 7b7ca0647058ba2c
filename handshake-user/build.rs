//! Builds the XDP program (handshake-ebpf) for bpfel-unknown-none with the nightly
//! toolchain and bpf-linker, so `include_bytes_aligned!` can embed it in the binary.
//! `cargo xtask setup` installs both; AYA_BUILD_SKIP=1 skips this step.

fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../handshake-ebpf");
    let package = aya_build::Package {
        name: "handshake-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}
