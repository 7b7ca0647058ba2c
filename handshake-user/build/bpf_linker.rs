//! Finding bpf-linker for the build scripts that build XDP programs (handshake-user's and
//! handshake-bench's), so that a plain `cargo build` works once `cargo xtask setup` has run:
//! setup builds bpf-linker into its cache rather than onto PATH.

use std::{
    env,
    path::{Path, PathBuf},
};

/// What `cargo xtask setup` installs (xtask/src/setup.rs).
const VERSION: &str = "0.13.0";

/// Puts the cached bpf-linker's folder first on PATH when PATH has none, or stops the
/// build with one line that says what to run.
pub fn put_on_path() {
    if let Err(error) = find() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn find() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=HANDSHAKE_CACHE");
    if env::var_os("AYA_BUILD_SKIP").is_some() {
        return Ok(());
    }
    let path = env::var_os("PATH").unwrap_or_default();
    if env::split_paths(&path).any(|dir| dir.join("bpf-linker").is_file()) {
        return Ok(());
    }
    let Some(bin) = cached_bin().filter(|bin| bin.join("bpf-linker").is_file()) else {
        anyhow::bail!(
            "bpf-linker is neither on PATH nor in handshake's cache: run `cargo xtask setup` once (it builds bpf-linker {VERSION} into ~/.cache/handshake, or $HANDSHAKE_CACHE)"
        );
    };
    let paths = std::iter::once(bin).chain(env::split_paths(&path));
    // SAFETY: the build script is single-threaded; the XDP crate's cargo (build/xdp.rs) inherits PATH.
    unsafe { env::set_var("PATH", env::join_paths(paths)?) };
    Ok(())
}

/// xtask's cache folder: $HANDSHAKE_CACHE, else $XDG_CACHE_HOME/handshake, else
/// ~/.cache/handshake.
fn cached_bin() -> Option<PathBuf> {
    let cache = match env::var_os("HANDSHAKE_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?
            .join("handshake"),
    };
    Some(cache.join(format!("bpf-linker-{VERSION}/bin")))
}
