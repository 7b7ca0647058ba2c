//! Which build this binary is (`handshake --version`), and whether an interface runs its
//! XDP program (`handshake status`).
//!
//! The hash in the version is of the embedded object file (build/version.rs). What the
//! kernel can report of a running program is its tag: `bpf_prog_calc_tag` hashes the
//! instructions as loaded, with map addresses zeroed, so the same object on the same
//! kernel always has the same tag. The tag this binary would run is therefore found by
//! loading its program (not attaching it) and asking the kernel.

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    programs::{Xdp, loaded_programs},
};

use crate::{XDP_OBJECT, loader::PROGRAM};

/// `handshake --version`: "0.1.0 (commit 8d12732, XDP object sha256 1a2b3c4d5e6f)".
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HANDSHAKE_COMMIT"),
    ", XDP object sha256 ",
    env!("HANDSHAKE_XDP_SHA256"),
    ")"
);

/// The kernel's tag of the program this binary loads, on this kernel.
pub fn own_tag() -> anyhow::Result<u64> {
    let mut ebpf = Ebpf::load(XDP_OBJECT).context("loading the embedded XDP object failed")?;
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| anyhow!("the embedded object has no program {PROGRAM}"))?
        .try_into()?;
    program
        .load()
        .context("loading the embedded XDP program to learn its tag failed")?;
    Ok(program.info()?.tag())
}

/// The kernel's tag of the loaded program `id`, if it is still loaded.
pub fn tag_of(id: u32) -> Option<u64> {
    loaded_programs()
        .filter_map(Result::ok)
        .find(|info| info.id() == id)
        .map(|info| info.tag())
}

/// A tag as bpftool and `ip -details link` print it.
pub fn tag_hex(tag: u64) -> String {
    format!("{tag:016x}")
}
