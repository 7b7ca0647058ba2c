//! `cargo xtask`: the developer's front door.
//!
//! - `setup`: what a fresh Debian machine needs to build and test (run by every other command;
//!   `--kernel 6.1` adds what the VM runs need);
//! - `build`: the `handshake` binary with the XDP program embedded;
//! - `test`:  every test, unit and privileged, as CI runs them; `--kernel 6.1` in a VM;
//! - `demo`:  a namespace lab with handshake in front of a real service;
//! - `bench`: the SYN flood lab and the XDP microbenchmarks (BENCH.md);
//! - `package`: the Debian package (cargo-deb), checked by lintian; `--test` checks its files;
//! - `lint`:  rustfmt and clippy on both sides.

mod package;
mod package_vm;
mod setup;
mod test;
mod vm;

use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install nightly rust-src, bpf-linker (cached) and the Debian packages the tests use.
    Setup {
        /// Also install what `test --kernel` needs for this kernel (qemu, busybox-static,
        /// Debian's kernel package, virtme-ng in a venv under the cache).
        #[arg(long, value_name = "VERSION")]
        kernel: Option<vm::Kernel>,
    },
    /// Build the `handshake` binary (release) with the XDP program embedded.
    Build,
    /// Run every test: host unit tests, BPF_PROG_TEST_RUN golden packets, namespace
    /// end-to-end tests. Needs root.
    Test {
        /// Run the suite in a qemu VM booted with this kernel instead of on the host
        /// (installed on first use; slow without KVM: 6-9x the host's time).
        #[arg(long, value_name = "VERSION")]
        kernel: Option<vm::Kernel>,
        /// Passed on to the test binaries (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Build a namespace lab, attach handshake in front of an echo service, connect
    /// through it and show the counters. Needs root.
    Demo,
    /// SYN flood lab (handshake against the kernel alone and nftables synproxy, nginx as
    /// the service) and XDP microbenchmarks; writes target/bench/bench.{json,png}. Needs root.
    Bench {
        /// Two offered rates and short steps: under two minutes.
        #[arg(long)]
        quick: bool,
        /// Only the XDP microbenchmarks (ns, ratios to the two floors, calls per path).
        #[arg(long)]
        micro: bool,
        /// Only the microbenchmark paths whose names hold TEXT (repeatable).
        #[arg(long = "path", value_name = "TEXT")]
        paths: Vec<String>,
        /// Calls per microbenchmark path.
        #[arg(long)]
        calls: Option<usize>,
        /// Also time this handshake-xdp object (an earlier build's, e.g. from
        /// target/release/build/handshake-user-*/out/) in the same run.
        #[arg(long, value_name = "OBJECT")]
        against: Option<std::path::PathBuf>,
    },
    /// Build target/debian/handshake_VERSION-1_ARCH.deb (cargo-deb) and run lintian on it.
    Package {
        /// Also check every file it holds (`cargo xtask test` does).
        #[arg(long)]
        test: bool,
    },
    /// rustfmt and clippy (-D warnings) over the host crates and the XDP program.
    Lint,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let tools = setup::run()?;
    match cli.command {
        Task::Setup { kernel } => {
            if let Some(kernel) = kernel {
                setup::vm(kernel.debian_release())?;
            }
            Ok(())
        }
        Task::Build => cargo(
            &tools,
            &["build", "--release", "--package", "handshake-user"],
        ),
        Task::Test { kernel, args } => {
            require_root("the tests attach XDP programs and create network namespaces")?;
            if let Some(kernel) = kernel {
                return vm::run(&tools, kernel, &args);
            }
            let mut command = vec!["test", "--workspace", "--exclude", "handshake-ebpf", "--"];
            command.extend(args.iter().map(String::as_str));
            test::run(cargo_command(&tools, &command))?;
            // The whole suite includes the package; a filtered run is about other tests.
            if args.is_empty() {
                package::check(&package::build(&tools)?)?;
            }
            Ok(())
        }
        Task::Package { test } => {
            let deb = package::build(&tools)?;
            if test {
                package::check(&deb)?;
            }
            Ok(())
        }
        Task::Demo => {
            require_root("the demo creates network namespaces and attaches XDP")?;
            cargo(
                &tools,
                &["build", "--release", "--package", "handshake-user"],
            )?;
            let binary = setup::workspace_root().join("target/release/handshake");
            run(Command::new(binary).arg("demo"))
        }
        Task::Bench {
            quick,
            micro,
            paths,
            calls,
            against,
        } => {
            require_root("the benchmark creates network namespaces and attaches XDP")?;
            setup::bench_packages()?;
            cargo(
                &tools,
                &["build", "--release", "--package", "handshake-bench"],
            )?;
            let root = setup::workspace_root();
            let mut bench = Command::new(root.join("target/release/handshake-bench"));
            bench.arg("--out").arg(root.join("target/bench"));
            if quick {
                bench.arg("--quick");
            }
            if micro {
                bench.arg("--micro-only");
            }
            for path in paths {
                bench.arg("--path").arg(path);
            }
            if let Some(calls) = calls {
                bench.arg("--calls").arg(calls.to_string());
            }
            if let Some(against) = against {
                // The bench runs from the workspace root; a relative path is the caller's.
                bench.arg("--against").arg(std::path::absolute(against)?);
            }
            run(&mut bench)
        }
        Task::Lint => {
            nightly_cargo(&tools, &["fmt", "--all", "--check"])?;
            let deny = ["--", "-D", "warnings"];
            let host = [
                "clippy",
                "--workspace",
                "--exclude",
                "handshake-ebpf",
                "--all-targets",
            ];
            cargo(&tools, &[&host[..], &deny[..]].concat())?;
            let bpf = [
                "clippy",
                "--package",
                "handshake-ebpf",
                "--package",
                "handshake-bench-ebpf",
                "--release",
            ];
            let target = ["--target", "bpfel-unknown-none", "-Z", "build-std=core"];
            nightly_cargo(&tools, &[&bpf[..], &target[..], &deny[..]].concat())
        }
    }
}

fn cargo(tools: &setup::Tools, args: &[&str]) -> anyhow::Result<()> {
    run(&mut cargo_command(tools, args))
}

fn cargo_command(tools: &setup::Tools, args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(args)
        .current_dir(setup::workspace_root())
        .env("PATH", tools.path());
    command
}

/// The XDP program builds only with nightly (-Z build-std); rustfmt.toml uses nightly
/// options. `rustup run` picks the toolchain even where $CARGO names stable's cargo.
fn nightly_cargo(tools: &setup::Tools, args: &[&str]) -> anyhow::Result<()> {
    let mut command = Command::new("rustup");
    command.args(["run", "nightly", "cargo"]).args(args);
    command
        .current_dir(setup::workspace_root())
        .env("PATH", tools.path());
    run(&mut command)
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {command:?} failed"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn require_root(why: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        bail!("run this as root: {why} (e.g. `sudo -E cargo xtask ...`)");
    }
    Ok(())
}

unsafe extern "C" {
    fn geteuid() -> u32;
}
