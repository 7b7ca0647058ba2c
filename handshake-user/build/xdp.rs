//! Building XDP crates for the build scripts of handshake-user and handshake-bench: the
//! nightly cargo for bpfel-unknown-none with bpf-linker, as aya-build 0.2.0 runs it, but
//! with the inner cargo's output kept back unless it fails. aya-build forwards every line of
//! it as `cargo:warning=`, and a newcomer read the ~50 `warning: handshake-user@...` lines
//! of every build as problems.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, anyhow, bail};

/// Ends the build script with one line naming the failure, if any; cargo shows the
/// compiler's output above it.
pub fn exit_on_error(result: anyhow::Result<()>) {
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// One XDP crate of the workspace and the features to build it with.
pub struct Package<'a> {
    pub name: &'a str,
    pub root_dir: &'a str,
    pub features: &'a [&'a str],
}

/// Builds each package's binaries in release and copies them into OUT_DIR under their
/// binary names, for `include_bytes_aligned!`. AYA_BUILD_SKIP=1 skips it, as with aya-build.
pub fn build(packages: &[Package]) -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if env::var_os("AYA_BUILD_SKIP").is_some_and(|skip| skip == "1" || skip == "true") {
        println!("cargo:warning=AYA_BUILD_SKIP is set: the XDP programs are not built");
        return Ok(());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("cargo sets OUT_DIR")?);
    for package in packages {
        // A build-dependency on the crate reruns this for changes to its library; its
        // binaries (the XDP programs) need this.
        println!("cargo:rerun-if-changed={}", package.root_dir);
        for (name, binary) in build_one(package, &out_dir)? {
            let copy = out_dir.join(&name);
            fs::copy(&binary, &copy).with_context(|| {
                format!("copying {} to {} failed", binary.display(), copy.display())
            })?;
        }
    }
    Ok(())
}

/// Runs the inner cargo; returns the binaries it built, by name.
fn build_one(package: &Package, out_dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let endian = env::var("CARGO_CFG_TARGET_ENDIAN").context("cargo sets the target endian")?;
    let target = if endian == "big" {
        "bpfeb-unknown-none"
    } else {
        "bpfel-unknown-none"
    };
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("cargo sets the target arch")?;
    // aya-ebpf picks its per-architecture definitions (pt_regs) from this cfg; BTF is
    // what lets the kernel check the program's functions (bpf_loop needs it).
    // Misaligned loads and stores: otherwise LLVM reads a packet's 4- and 8-byte fields a
    // byte at a time (an IPv6 address: 16 loads, 15 shifts, 15 ors); the verifier allows
    // misaligned packet access where the CPU handles it (x86-64, arm64), and stack values
    // stored whole are kept aligned (handshake-ebpf's aligned.rs). ISA v3: 32-bit ALU and
    // jumps, fewer instructions; Linux 5.1 and later take it.
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
        "-Ctarget-feature=+allows-misaligned-mem-access".to_owned(),
        "-Ctarget-cpu=v3".to_owned(),
    ]
    .join("\x1f");
    // Apart from OUT_DIR's copies: cargo locks its target folder, and this one is in use.
    let target_dir = out_dir.join("xdp-target").join(package.name);
    let mut cargo = Command::new("rustup");
    cargo
        .args([
            "run",
            "nightly",
            "cargo",
            "build",
            "--package",
            package.name,
        ])
        .args([
            "--bins",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .args(["--target", target, "-Z", "build-std=core"])
        .args(["--features", &package.features.join(",")])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        // The outer cargo's stable rustc must not stand in for the nightly's.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let output = cargo
        .output()
        .with_context(|| format!("starting {cargo:?} failed; is rustup on PATH?"))?;
    if !output.status.success() {
        // Cargo shows a failed build script's stderr: the compiler's errors, rendered.
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        bail!(
            "building the XDP crate {} failed ({}); the compiler's output is above",
            package.name,
            output.status
        );
    }
    let binaries: Vec<(String, PathBuf)> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|message| {
            let executable = message["executable"].as_str()?;
            let name = message["target"]["name"].as_str()?;
            Some((name.to_owned(), PathBuf::from(executable)))
        })
        .collect();
    if binaries.is_empty() {
        return Err(anyhow!(
            "building the XDP crate {} produced no binary; its Cargo.toml needs a [[bin]]",
            package.name
        ));
    }
    Ok(binaries)
}
