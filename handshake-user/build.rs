//! Builds the XDP program (handshake-ebpf) for bpfel-unknown-none with the nightly
//! toolchain and bpf-linker, so `include_bytes_aligned!` can embed it in the binary; its
//! compiler output is shown only when it fails (build/xdp.rs). `cargo xtask setup`
//! installs both (bpf-linker into its cache, which `bpf_linker` finds); AYA_BUILD_SKIP=1
//! skips this step. It also names the commit and the object's hash for `--version`.

#[path = "build/bpf_linker.rs"]
mod bpf_linker;
#[path = "build/version.rs"]
mod version;
#[path = "build/xdp.rs"]
mod xdp;

fn main() {
    bpf_linker::put_on_path();
    xdp::exit_on_error(build());
}

fn build() -> anyhow::Result<()> {
    xdp::build(&[xdp::Package {
        name: "handshake-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../handshake-ebpf"),
        features: &[],
    }])?;
    version::emit("handshake-xdp");
    Ok(())
}
