//! Making a fresh machine able to build and test handshake, idempotently:
//! 1. the nightly toolchain's `rust-src` (the XDP program is built with -Z build-std=core);
//! 2. bpf-linker, built once against the nightly's own libLLVM and cached outside the
//!    clone (`$HANDSHAKE_CACHE`, default `~/.cache/handshake`);
//! 3. the Debian packages the tests and the demo call (iproute2, ethtool, nftables and
//!    iptables for the NAT refusal's rules, tcpdump to read what `capture` writes);
//! 4. for `cargo xtask test --kernel` only: qemu, a Debian kernel and virtme-ng (cached);
//! 5. for `cargo xtask package` (and the tests of the package): cargo-deb (cached like
//!    bpf-linker), lintian and dpkg-dev.

use std::{
    env,
    ffi::OsString,
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, anyhow, bail};

const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages and a command each provides.
const PACKAGES: [(&str, &str); 6] = [
    ("iproute2", "ip"),
    ("iproute2", "nstat"),
    ("ethtool", "ethtool"),
    // handshake reads NAT rules with `nft -j`; tests/nat_ports.rs makes them with both.
    ("nftables", "nft"),
    ("iptables", "iptables"),
    // tests/capture.rs reads what `handshake capture` wrote with it.
    ("tcpdump", "tcpdump"),
];

/// What `cargo xtask bench` adds: the service (nftables, for the synproxy contender, is
/// in PACKAGES).
const BENCH_PACKAGES: [(&str, &str); 1] = [("nginx-light", "nginx")];

/// What `cargo xtask package` adds: cargo-deb calls dpkg-shlibdeps for the package's
/// library dependencies; lintian checks the result.
const CARGO_DEB_VERSION: &str = "3.8.0";
const PACKAGE_PACKAGES: [(&str, &str); 2] =
    [("dpkg-dev", "dpkg-shlibdeps"), ("lintian", "lintian")];

/// virtme-ng boots a kernel under qemu with the host's filesystem as the guest's root.
const VIRTME_NG_VERSION: &str = "1.42";
/// What `cargo xtask test --kernel` adds: the emulator, and the static busybox that
/// virtme-ng puts in the guest's initramfs.
const VM_PACKAGES: [(&str, &str); 2] = [
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("busybox-static", "busybox"),
];

pub struct Tools {
    bpf_linker_bin: PathBuf,
}

impl Tools {
    /// PATH with bpf-linker's folder first.
    pub fn path(&self) -> OsString {
        let mut paths = vec![self.bpf_linker_bin.clone()];
        paths.extend(env::split_paths(&env::var_os("PATH").unwrap_or_default()));
        env::join_paths(paths).expect("PATH entries contain no separator")
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn run() -> anyhow::Result<Tools> {
    rust_src()?;
    let bpf_linker_bin = bpf_linker()?;
    debian_packages(&PACKAGES)?;
    Ok(Tools { bpf_linker_bin })
}

/// The Debian packages only the benchmark uses, installed when it first runs.
pub fn bench_packages() -> anyhow::Result<()> {
    debian_packages(&BENCH_PACKAGES)
}

/// Installs what building and checking the Debian package takes, once; returns the
/// cargo-deb binary, built into the cache folder (not onto PATH).
pub fn package_tools() -> anyhow::Result<PathBuf> {
    debian_packages(&PACKAGE_PACKAGES)?;
    let root = cache_dir()?.join(format!("cargo-deb-{CARGO_DEB_VERSION}"));
    let binary = root.join("bin/cargo-deb");
    if binary.exists()
        && output(binary.to_str().expect("UTF-8 cache path"), &["--version"])
            .is_ok_and(|v| v.contains(CARGO_DEB_VERSION))
    {
        return Ok(binary);
    }
    step(
        &format!(
            "building cargo-deb {CARGO_DEB_VERSION} into {} (a few minutes, once)",
            root.display()
        ),
        Command::new("cargo")
            .args([
                "install",
                "--locked",
                &format!("cargo-deb@{CARGO_DEB_VERSION}"),
                "--root",
            ])
            .arg(&root),
    )?;
    Ok(binary)
}

/// What booting a test VM takes.
pub struct Vm {
    /// virtme-ng's folder of commands (`vng` runs `virtme-run` from PATH).
    pub bin: PathBuf,
    /// The kernel image, e.g. /boot/vmlinuz-6.1.0-48-amd64.
    pub kernel: PathBuf,
}

/// Installs what `cargo xtask test --kernel` needs, once: the VM packages, Debian's
/// kernel of `release` (e.g. "6.1.0") and virtme-ng in a venv under the cache folder.
pub fn vm(release: &str) -> anyhow::Result<Vm> {
    let bin = cache_dir()?.join("vng-venv/bin");
    let vng_ready = output(
        bin.join("vng").to_str().expect("UTF-8 cache path"),
        &["--version"],
    )
    .is_ok_and(|v| v.contains(VIRTME_NG_VERSION));
    let mut missing = missing_packages(&VM_PACKAGES);
    // Debian's python3 makes venvs only with python3-venv (its ensurepip) installed.
    let venv_ready = Command::new("python3")
        .args(["-c", "import ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !vng_ready && !venv_ready {
        missing.push("python3-venv".into());
    }
    let mut kernel = installed_kernel(release)?;
    if kernel.is_none() || !missing.is_empty() {
        if kernel.is_none() {
            // Which package holds the kernel is known only from fresh package lists.
            apt_update(&[&missing[..], &[format!("linux-image-{release}-*-amd64")]].concat())?;
            missing.push(kernel_package(release)?);
        } else {
            apt_update(&missing)?;
        }
        apt_install(&missing)?;
        kernel = installed_kernel(release)?;
    }
    let kernel = kernel.ok_or_else(|| {
        anyhow!("installing Debian's {release} kernel left no /boot/vmlinuz-{release}-*-amd64")
    })?;

    if !vng_ready {
        let venv = bin.parent().expect("bin lies in the venv");
        step(
            &format!("making a Python venv for virtme-ng in {}", venv.display()),
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(venv),
        )?;
        step(
            &format!("installing virtme-ng {VIRTME_NG_VERSION}"),
            Command::new(bin.join("pip"))
                .args(["install", "--disable-pip-version-check", "-q"])
                .arg(format!("virtme-ng=={VIRTME_NG_VERSION}")),
        )?;
    }
    Ok(Vm { bin, kernel })
}

/// The newest installed /boot/vmlinuz-RELEASE-N-amd64 (N, Debian's ABI number, grows with
/// each update; the -cloud and -rt flavours are left out).
fn installed_kernel(release: &str) -> anyhow::Result<Option<PathBuf>> {
    let prefix = format!("vmlinuz-{release}-");
    let newest = fs::read_dir("/boot")
        .context("reading /boot")?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter_map(|name| Some((abi_number(&name, &prefix, "-amd64")?, name)))
        .max();
    Ok(newest.map(|(_, name)| Path::new("/boot").join(name)))
}

/// The newest linux-image-RELEASE-N-amd64-unsigned in the package lists: Debian replaces
/// the package (a new N) with each kernel update, so no name stays installable for long.
fn kernel_package(release: &str) -> anyhow::Result<String> {
    let prefix = format!("linux-image-{release}-");
    let pattern = format!("^{}[0-9]+-amd64-unsigned$", prefix.replace('.', "\\."));
    let found = output("apt-cache", &["search", "--names-only", &pattern])?;
    found
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| Some((abi_number(name, &prefix, "-amd64-unsigned")?, name)))
        .max()
        .map(|(_, name)| name.to_owned())
        .ok_or_else(|| {
            anyhow!(
                "no {prefix}N-amd64-unsigned in the package lists; the {release} kernel comes from Debian 12 (bookworm): add bookworm and bookworm-security to the apt sources"
            )
        })
}

/// N in PREFIX + N + SUFFIX.
fn abi_number(name: &str, prefix: &str, suffix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = env::var_os("HANDSHAKE_CACHE") {
        return Ok(PathBuf::from(dir));
    }
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .ok_or_else(|| anyhow!("neither HANDSHAKE_CACHE, XDG_CACHE_HOME nor HOME is set; set HANDSHAKE_CACHE to a folder for cached tools"))?;
    Ok(base.join("handshake"))
}

fn output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} failed"))?;
    if !output.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn step(what: &str, command: &mut Command) -> anyhow::Result<()> {
    eprintln!("setup: {what}");
    let status = command
        .status()
        .with_context(|| format!("starting {command:?} failed"))?;
    if !status.success() {
        bail!("setup: {what} failed ({status}); see the output above");
    }
    Ok(())
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output("rustup", &["component", "list", "--installed", "--toolchain", "nightly"])
        .context("the nightly toolchain is needed to build the XDP program; install it with `rustup toolchain install nightly`")?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        return Ok(());
    }
    step(
        "adding rust-src to the nightly toolchain",
        Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
    )
}

/// bpf-linker links through LLVM; the nightly ships a libLLVM of the very version its
/// rustc emits, so build bpf-linker against that one (no system LLVM needed).
fn bpf_linker() -> anyhow::Result<PathBuf> {
    let cache = cache_dir()?;
    let root = cache.join(format!("bpf-linker-{BPF_LINKER_VERSION}"));
    let binary = root.join("bin/bpf-linker");
    if binary.exists()
        && output(binary.to_str().expect("UTF-8 cache path"), &["--version"])
            .is_ok_and(|v| v.contains(BPF_LINKER_VERSION))
    {
        return Ok(root.join("bin"));
    }

    let version = output("rustc", &["+nightly", "-vV"])?;
    let llvm_major = version
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .ok_or_else(|| anyhow!("`rustc +nightly -vV` names no LLVM version:\n{version}"))?
        .to_owned();
    let sysroot = PathBuf::from(output("rustc", &["+nightly", "--print", "sysroot"])?.trim());
    let lib_dir = sysroot.join("lib");
    let libllvm = fs::read_dir(&lib_dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("libLLVM.so."))
        .ok_or_else(|| {
            anyhow!(
                "no libLLVM.so.* in {}; is the nightly toolchain complete?",
                lib_dir.display()
            )
        })?;

    // llvm-sys looks for $LLVM_PREFIX/lib/libLLVM.so; the loader then wants the soname.
    let prefix = cache.join(format!("llvm-{llvm_major}"));
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)?;
    for name in ["libLLVM.so", libllvm.as_str()] {
        let link = prefix_lib.join(name);
        let _ = fs::remove_file(&link);
        symlink(lib_dir.join(&libllvm), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    step(
        &format!(
            "building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {llvm_major} (about a minute, once)"
        ),
        Command::new("cargo")
            .args([
                "install",
                "--locked",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--no-default-features",
            ])
            .args(["--features", &format!("llvm-{llvm_major}"), "--root"])
            .arg(&root)
            .env("LLVM_PREFIX", &prefix),
    )?;
    Ok(root.join("bin"))
}

fn debian_packages(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing = missing_packages(packages);
    if missing.is_empty() {
        return Ok(());
    }
    apt_update(&missing)?;
    apt_install(&missing)
}

/// The packages whose command is not installed, each once.
fn missing_packages(packages: &[(&str, &str)]) -> Vec<String> {
    let mut missing: Vec<String> = packages
        .iter()
        .filter(|(_, command)| which(command).is_none())
        .map(|(package, _)| package.to_string())
        .collect();
    missing.dedup();
    missing
}

/// `missing` names the packages wanted, for the message where there is no apt-get.
fn apt_update(missing: &[String]) -> anyhow::Result<()> {
    if Command::new("apt-get").arg("--version").output().is_err() {
        bail!(
            "the tests need the Debian packages {missing:?}; install them with your package manager"
        );
    }
    step(
        "refreshing the Debian package lists",
        Command::new("apt-get").args(["update", "-q"]),
    )
}

fn apt_install(packages: &[String]) -> anyhow::Result<()> {
    step(
        &format!("installing {}", packages.join(" ")),
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn which(command: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        env::split_paths(&env::var_os("PATH").unwrap_or_default()).collect();
    // Root's tools live in sbin, which a non-login PATH may lack.
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|dir| dir.join(command))
        .find(|path| path.is_file())
}
