//! `cargo xtask package`: the Debian package, built by cargo-deb from the metadata in
//! handshake-user/Cargo.toml, checked by lintian; `--test` (and `cargo xtask test`) also
//! checks what it holds, file by file.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

use crate::setup;

/// Every file the package installs, with its mode as `dpkg-deb -c` prints it.
const FILES: [(&str, &str); 37] = [
    ("-rw-r--r--", "./etc/handshake/handshake.toml"),
    ("-rw-r--r--", "./usr/lib/systemd/system/handshake.service"),
    ("-rwxr-xr-x", "./usr/sbin/handshake"),
    (
        "-rw-r--r--",
        "./usr/share/bash-completion/completions/handshake",
    ),
    ("-rw-r--r--", "./usr/share/doc/handshake/BENCH.md"),
    ("-rw-r--r--", "./usr/share/doc/handshake/README.md"),
    (
        "-rw-r--r--",
        "./usr/share/doc/handshake/changelog.Debian.gz",
    ),
    ("-rw-r--r--", "./usr/share/doc/handshake/copyright"),
    (
        "-rw-r--r--",
        "./usr/share/fish/vendor_completions.d/handshake.fish",
    ),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-allow-add.8.gz",
    ),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-allow-list.8.gz",
    ),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-allow-remove.8.gz",
    ),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-allow.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-attach.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-capture.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-demo.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-deny-add.8.gz"),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-deny-list.8.gz",
    ),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-deny-remove.8.gz",
    ),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-deny.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-detach.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-dry-run.8.gz"),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-limit-off.8.gz",
    ),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-limit-set.8.gz",
    ),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-limit-show.8.gz",
    ),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-limit.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-metrics.8.gz"),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-ports-add.8.gz",
    ),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-ports-list.8.gz",
    ),
    (
        "-rw-r--r--",
        "./usr/share/man/man8/handshake-ports-remove.8.gz",
    ),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-ports.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-run.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-stats.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-status.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake-top.8.gz"),
    ("-rw-r--r--", "./usr/share/man/man8/handshake.8.gz"),
    (
        "-rw-r--r--",
        "./usr/share/zsh/vendor-completions/_handshake",
    ),
];

/// The keys of config_file.rs, each of which the packaged config shows commented out.
const CONFIG_KEYS: [&str; 7] = [
    "metrics =",
    "[[interface]]",
    "name =",
    "ports =",
    "xdp_mode =",
    "mss =",
    "timestamps =",
];

/// Builds the release binary, its man pages and completions, the .deb, and runs lintian
/// over it (errors fail; warnings are printed). Returns the .deb's path.
pub fn build(tools: &setup::Tools) -> anyhow::Result<PathBuf> {
    let cargo_deb = setup::package_tools()?;
    crate::cargo(
        tools,
        &["build", "--release", "--package", "handshake-user"],
    )?;
    let root = setup::workspace_root();
    let docs = root.join("target/release/handshake-docs");
    if docs.exists() {
        fs::remove_dir_all(&docs).with_context(|| format!("emptying {}", docs.display()))?;
    }
    crate::run(
        Command::new(root.join("target/release/handshake"))
            .arg("generate-docs")
            .arg(&docs),
    )?;
    // Man pages are installed gzipped (Debian policy 12.1); -n keeps the bytes the same
    // from build to build.
    for page in fs::read_dir(docs.join("man"))? {
        crate::run(Command::new("gzip").args(["-9n"]).arg(page?.path()))?;
    }
    let out_dir = root.join("target/debian");
    let output = Command::new(&cargo_deb)
        .args(["--package", "handshake-user", "--no-build", "--output"])
        .arg(&out_dir)
        .current_dir(&root)
        .env("PATH", tools.path())
        .output()
        .with_context(|| format!("starting {} failed", cargo_deb.display()))?;
    if !output.status.success() {
        bail!(
            "cargo-deb failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // cargo-deb prints the path of the package it wrote, alone on the last line.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    ensure!(
        deb.extension().is_some_and(|ext| ext == "deb") && deb.is_file(),
        "cargo-deb printed no .deb path; its output was: {stdout}"
    );
    lintian(&deb)?;
    eprintln!("package: {}", deb.display());
    Ok(deb)
}

/// lintian's errors fail the build; its warnings and notes are shown.
fn lintian(deb: &Path) -> anyhow::Result<()> {
    let output = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(deb)
        .output()
        .context("starting lintian failed")?;
    let report = String::from_utf8_lossy(&output.stdout);
    print!("{report}");
    if !output.status.success() {
        bail!(
            "lintian found errors in {} ({}): the E: lines above; {}",
            deb.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// What the package holds, checked against FILES and the sources it was made from.
pub fn check(deb: &Path) -> anyhow::Result<()> {
    let listing = command_output(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    let files = installed_files(&listing);
    let expected: Vec<(String, String)> = FILES
        .iter()
        .map(|(mode, path)| (mode.to_string(), path.to_string()))
        .collect();
    if files != expected {
        let missing: Vec<_> = expected.iter().filter(|f| !files.contains(f)).collect();
        let extra: Vec<_> = files.iter().filter(|f| !expected.contains(f)).collect();
        bail!(
            "{} holds other files than package.rs lists: missing {missing:?}, unexpected {extra:?}; change the assets in handshake-user/Cargo.toml or FILES",
            deb.display()
        );
    }
    let conffiles = command_output(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"))?;
    ensure!(
        conffiles == "/etc/handshake/handshake.toml\n",
        "the package's conffiles are {conffiles:?}, not exactly /etc/handshake/handshake.toml"
    );

    let root = setup::workspace_root();
    let unpacked = root.join("target/debian/unpacked");
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked)?;
    }
    crate::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    for (installed, source) in [
        (
            "etc/handshake/handshake.toml",
            "handshake-user/debian/handshake.toml",
        ),
        (
            "usr/lib/systemd/system/handshake.service",
            "handshake-user/debian/handshake.service",
        ),
        ("usr/share/doc/handshake/README.md", "README.md"),
        ("usr/share/doc/handshake/BENCH.md", "BENCH.md"),
    ] {
        ensure!(
            fs::read(unpacked.join(installed))? == fs::read(root.join(source))?,
            "/{installed} in the package differs from {source}"
        );
    }
    check_config(&fs::read_to_string(
        unpacked.join("etc/handshake/handshake.toml"),
    )?)?;
    let version =
        command_output(Command::new(unpacked.join("usr/sbin/handshake")).arg("--version"))?;
    ensure!(
        version.starts_with("handshake 0.1.0 (commit ") && version.contains(", XDP object sha256 "),
        "the packaged binary's --version is {version:?}: no commit or XDP object hash"
    );
    eprintln!(
        "package: {} holds the {} files it should",
        deb.display(),
        FILES.len()
    );
    Ok(())
}

/// The packaged config changes nothing until edited: every line is a comment, and every
/// key is shown.
fn check_config(text: &str) -> anyhow::Result<()> {
    if let Some(line) = text
        .lines()
        .find(|line| !line.trim().is_empty() && !line.starts_with('#'))
    {
        bail!("the packaged config sets {line:?}; every key must be commented out");
    }
    for key in CONFIG_KEYS {
        ensure!(
            text.lines()
                .any(|line| line.starts_with(&format!("#{key}"))),
            "the packaged config does not show the key {key:?}, commented out"
        );
    }
    Ok(())
}

/// (mode, path) of each regular file in a `dpkg-deb -c` listing, sorted by path.
fn installed_files(listing: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = listing
        .lines()
        .filter(|line| line.starts_with('-'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((fields.first()?.to_string(), fields.get(5)?.to_string()))
        })
        .collect();
    files.sort_by(|a, b| a.1.cmp(&b.1));
    files
}

fn command_output(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("starting {command:?} failed"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::{check_config, installed_files};

    #[test]
    fn reads_regular_files_of_a_listing() {
        let listing = "drwxr-xr-x 0/0               0 2024-01-01 00:00 ./usr/sbin/\n\
            -rwxr-xr-x 0/0         4242 2024-01-01 00:00 ./usr/sbin/handshake\n\
            -rw-r--r-- 0/0            9 2024-01-01 00:00 ./etc/handshake/handshake.toml\n\
            lrwxrwxrwx 0/0            0 2024-01-01 00:00 ./usr/bin/x -> ../sbin/handshake\n";
        assert_eq!(
            installed_files(listing),
            [
                ("-rw-r--r--".into(), "./etc/handshake/handshake.toml".into()),
                ("-rwxr-xr-x".into(), "./usr/sbin/handshake".into()),
            ]
        );
    }

    #[test]
    fn config_must_be_all_comments() {
        let all = "# comment\n#metrics = \"x\"\n#[[interface]]\n#name = \"eth0\"\n#ports = [80]\n\
                   #xdp_mode = \"auto\"\n#mss = 1460\n#timestamps = false\n";
        assert!(check_config(all).is_ok());
        assert_eq!(
            check_config(&all.replace("#mss", "mss"))
                .unwrap_err()
                .to_string(),
            "the packaged config sets \"mss = 1460\"; every key must be commented out"
        );
        assert_eq!(
            check_config(&all.replace("#mss = 1460\n", ""))
                .unwrap_err()
                .to_string(),
            "the packaged config does not show the key \"mss =\", commented out"
        );
    }
}
