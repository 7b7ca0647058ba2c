//! Shared by the integration tests: packet building with an independent checksum, and the
//! rule that privileged tests fail loudly rather than skip.

#![allow(dead_code)]

pub mod bed;
pub mod packet;
pub mod pinned;
pub mod protected;
pub mod raw;

/// Integration tests need root (XDP, namespaces). Under CI=true, or anywhere, a missing
/// privilege is a failure with a reason, never a silent pass.
pub fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests attach XDP programs and create network namespaces: run them as root (`sudo -E cargo xtask test`)"
    );
}
