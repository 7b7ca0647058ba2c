//! What `handshake --version` names besides the release: the git commit the binary was
//! built from and a hash of the XDP object it embeds, so that two builds of one release
//! can be told apart (`status` compares the running program with this binary's).

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use sha2::{Digest as _, Sha256};

/// Sets HANDSHAKE_COMMIT (`git rev-parse --short HEAD`, `-dirty` when tracked files
/// differ from it, "unknown" outside a git checkout) and HANDSHAKE_XDP_SHA256 (the first
/// 12 hex digits of the SHA-256 of OUT_DIR/`object`, "unknown" when it was not built) for
/// the crate's `env!`.
pub fn emit(object: &str) {
    println!("cargo:rustc-env=HANDSHAKE_COMMIT={}", commit());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let hash = fs::read(out_dir.join(object))
        .map(|bytes| hex(&Sha256::digest(bytes)[..6]))
        .unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=HANDSHAKE_XDP_SHA256={hash}");
}

fn commit() -> String {
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(manifest_dir)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let Some(hash) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // A new commit moves HEAD or the branch it names; staging changes the index. Edits
    // to the crates' sources rerun this script through their rerun-if-changed lines.
    for name in ["HEAD", "index"] {
        rerun_if_changed_git_path(&git, name);
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        rerun_if_changed_git_path(&git, &branch);
    }
    for dir in ["src", "../handshake-common"] {
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(manifest_dir).join(dir).display()
        );
    }
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|changes| !changes.is_empty());
    if dirty { format!("{hash}-dirty") } else { hash }
}

fn rerun_if_changed_git_path(git: &dyn Fn(&[&str]) -> Option<String>, name: &str) {
    if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", name]) {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
