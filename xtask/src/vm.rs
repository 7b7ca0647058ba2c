//! `cargo xtask test --kernel 6.1`: the whole test suite inside a VM booted with an older
//! kernel, where verifier and sysctl differences show up that the host's kernel hides.
//!
//! The test binaries are built on the host. virtme-ng boots the kernel under qemu with the
//! host's filesystem as the guest's root, read-only with writable overlays in guest RAM, so
//! nothing the tests do in the guest reaches the host; only `target/vm-KERNEL/` is shared
//! read-write. A script written there runs each test binary, streams its output to the
//! console and keeps a copy and the exit status next to it; once the VM is gone the host
//! counts the results from those files.

use std::{
    fmt::Write as _,
    fs, io,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{package, package_vm, setup, test::Tally};

/// The kernels a VM can boot, each a Debian package family.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Kernel {
    /// Debian 12's kernel
    #[value(name = "6.1")]
    V6_1,
}

impl Kernel {
    fn name(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1",
        }
    }

    /// The release in Debian's package and image names: linux-image-6.1.0-N-amd64.
    pub fn debian_release(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1.0",
        }
    }
}

/// Without KVM (these machines are nested guests) qemu emulates: the suite takes 6-9x its
/// host time. A guest that hangs must still not hang CI.
const TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// As many CPUs as the CI machines have; libtest runs as many tests at once.
const CPUS: &str = "2";

struct TestBinary {
    /// Its source file from the workspace root, e.g. handshake-user/tests/cli.rs.
    name: String,
    executable: String,
    /// cargo runs a test binary in its package's folder; some tests may count on that.
    package_dir: String,
}

/// Builds the test binaries, runs them in the VM with `args` (e.g. a test name filter),
/// prints the total and fails when a test failed, a binary did not finish, or none ran.
pub fn run(tools: &setup::Tools, kernel: Kernel, args: &[String]) -> anyhow::Result<()> {
    let vm = setup::vm(kernel.debian_release())?;
    let mut binaries = build(tools)?;
    let dir = setup::workspace_root().join(format!("target/vm-{}", kernel.name()));
    // A status file left by an earlier run would pass for this run's.
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir_str = dir.to_str().expect("the workspace path is UTF-8");
    // The whole suite includes the package, installed in the guest; a filtered run is
    // about other tests.
    if args.is_empty() {
        binaries.push(package_test(tools, &dir)?);
    }
    let script = dir.join("guest.sh");
    fs::write(&script, guest_script(&binaries, args, dir_str))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;

    eprintln!(
        "vm: booting {} under qemu without KVM (about 30 s), then {} test binaries",
        vm.kernel.display(),
        binaries.len()
    );
    let started = Instant::now();
    let status = boot(&vm, &dir, &script)?;
    eprintln!("vm: done in {} s", started.elapsed().as_secs());

    let mut tally = Tally::default();
    let mut failed_binaries = Vec::new();
    for (i, binary) in binaries.iter().enumerate() {
        let log = fs::read_to_string(dir.join(format!("{i}.log"))).unwrap_or_default();
        log.lines().for_each(|line| tally.add(line));
        let code = fs::read_to_string(dir.join(format!("{i}.status")));
        match code.as_deref().map(str::trim) {
            Ok("0") => {}
            Ok(code) => failed_binaries.push(format!("{} (exit status {code})", binary.name)),
            Err(_) => failed_binaries.push(format!(
                "{} (no exit status: the guest stopped before it ended)",
                binary.name
            )),
        }
    }
    tally.print();
    if !failed_binaries.is_empty() {
        bail!(
            "on kernel {}, these test binaries failed: {}; their output is above and in {}",
            kernel.name(),
            failed_binaries.join(", "),
            dir.display()
        );
    }
    if !status.success() {
        bail!("vng failed with {status}; see its output above");
    }
    tally.require_some()
}

/// The package built on the host and its install test (package_vm.rs) as a script the
/// guest runs like a test binary.
fn package_test(tools: &setup::Tools, dir: &Path) -> anyhow::Result<TestBinary> {
    let deb = package::build(tools)?;
    let root = setup::workspace_root();
    let version = Command::new(root.join("target/release/handshake"))
        .arg("--version")
        .output()
        .context("running target/release/handshake --version failed")?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let script = dir.join("package.sh");
    fs::write(&script, package_vm::script(&deb, &version))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    Ok(TestBinary {
        name: "xtask/src/package_vm.rs (dpkg -i, attach, status, dpkg -r)".to_owned(),
        executable: script.display().to_string(),
        package_dir: root.display().to_string(),
    })
}

/// `cargo test --no-run` for the same crates `cargo xtask test` tests; cargo's JSON
/// messages name each test binary it built.
fn build(tools: &setup::Tools) -> anyhow::Result<Vec<TestBinary>> {
    let mut command = crate::cargo_command(
        tools,
        &[
            "test",
            "--workspace",
            "--exclude",
            "handshake-ebpf",
            "--no-run",
            // JSON on stdout; compiler errors still readable on stderr.
            "--message-format=json-render-diagnostics",
        ],
    );
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {command:?} failed"))?;
    if !output.status.success() {
        bail!("building the tests failed ({}); see above", output.status);
    }
    let root = setup::workspace_root();
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let message: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("cargo printed a line that is not JSON: {line}"))?;
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let (Some(executable), Some(src_path), Some(manifest)) = (
            message["executable"].as_str(),
            message["target"]["src_path"].as_str(),
            message["manifest_path"].as_str(),
        ) else {
            continue;
        };
        let name = Path::new(src_path)
            .strip_prefix(&root)
            .unwrap_or(Path::new(src_path));
        binaries.push(TestBinary {
            name: name.display().to_string(),
            executable: executable.to_owned(),
            package_dir: Path::new(manifest)
                .parent()
                .expect("a manifest lies in a folder")
                .display()
                .to_string(),
        });
    }
    binaries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(binaries)
}

/// The script the guest runs as root: binary i's output goes to the console and to
/// `dir`/i.log, its exit status to `dir`/i.status (missing if it never ended). Unlike
/// `cargo test`, every binary runs after a failure too: a boot is too dear to waste.
fn guest_script(binaries: &[TestBinary], args: &[String], dir: &str) -> String {
    let mut script = String::from(
        r#"#!/bin/sh
# Written by `cargo xtask test --kernel`; runs as root in the VM.
echo "vm: $(uname -r) up after $(cut -d' ' -f1 /proc/uptime) s"
# A systemd host mounts the BPF filesystem; virtme-ng's init does not.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
"#,
    );
    // The guest starts with a clean environment; keep the host's debugging switches.
    for name in ["RUST_BACKTRACE", "RUST_LOG"] {
        if let Ok(value) = std::env::var(name) {
            writeln!(script, "export {name}={}", quote(&value)).unwrap();
        }
    }
    for (i, binary) in binaries.iter().enumerate() {
        let command: Vec<String> = std::iter::once(&binary.executable)
            .chain(args)
            .map(|word| quote(word))
            .collect();
        writeln!(
            script,
            "echo; echo {header}\n\
             cd {package_dir} && {{ {command}; echo $? > {dir}/{i}.status; }} 2>&1 | tee {dir}/{i}.log",
            header = quote(&format!("     Running {}", binary.name)),
            package_dir = quote(&binary.package_dir),
            command = command.join(" "),
            dir = quote(dir),
        )
        .unwrap();
    }
    script
}

/// `word` as one shell word.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Boots the VM to run `script` and waits for it, at most `TIMEOUT`.
fn boot(vm: &setup::Vm, dir: &Path, script: &Path) -> anyhow::Result<ExitStatus> {
    let mut path = vec![vm.bin.clone()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut command = Command::new(vm.bin.join("vng"));
    command
        .args(["--disable-kvm", "--run"])
        .arg(&vm.kernel)
        .args([
            "--user", "root", "--cpus", CPUS, "--memory", "4G", "--rwdir",
        ])
        .arg(dir)
        .arg("--exec")
        .arg(script)
        .env("PATH", std::env::join_paths(path)?)
        .stdin(Stdio::null());
    // qemu writes the guest's output by opening /proc/self/fd/1 and 2 anew: on a file (a
    // CI log) that starts over at offset 0 and overwrites what came before. Through a
    // pipe we copy from, it stays in order.
    let (mut guest_output, writer) = io::pipe()?;
    command.stdout(writer.try_clone()?).stderr(writer);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {command:?} failed"))?;
    // The command holds write ends too; the copy ends only once every one is closed.
    drop(command);
    let relay = thread::spawn(move || io::copy(&mut guest_output, &mut io::stdout()));
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            // The guest's last lines may still be in the pipe.
            let _ = relay.join();
            return Ok(status);
        }
        if started.elapsed() > TIMEOUT {
            kill_tree(child.id());
            let _ = child.wait();
            bail!(
                "the VM ran for {} minutes without finishing, so it was stopped: a test or the guest kernel hangs; the output so far is above and in {}",
                TIMEOUT.as_secs() / 60,
                dir.display()
            );
        }
        thread::sleep(Duration::from_secs(1));
    }
}

/// Kills `pid` and its descendants: vng runs virtme-run, which becomes qemu, so killing
/// vng alone would leave the VM running.
fn kill_tree(pid: u32) {
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        tree.extend(children(tree[i]));
        i += 1;
    }
    for pid in tree {
        // SAFETY: kill has no memory preconditions; these are our own descendants.
        unsafe { kill(pid as i32, SIGKILL) };
    }
}

/// The processes whose parent is `pid`, from the 4th field of /proc/PID/stat.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
            let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            (parent.parse() == Ok(pid)).then_some(child)
        })
        .collect()
}

const SIGKILL: i32 = 9;

unsafe extern "C" {
    fn kill(pid: i32, signal: i32) -> i32;
}
