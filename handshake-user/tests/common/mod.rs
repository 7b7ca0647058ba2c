//! Shared by the integration tests: packet building with an independent checksum, and the
//! rule that privileged tests fail loudly rather than skip.

#![allow(dead_code)]

pub mod bed;
pub mod container;
pub mod packet;
pub mod pinned;
pub mod protected;
pub mod raw;
pub mod tcp_info;

/// Pins the calling thread (and the threads it starts) to CPU 0. The flood state is per
/// CPU, and XDP on a veth runs on the CPU that sent the frame into it: the SYN-ACKs that
/// make a flood and the ACKs that ask about it must meet on one CPU.
pub fn pin_to_cpu_0() {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(0, &mut set) };
    let result = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(
        result,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// Integration tests need root (XDP, namespaces). Under CI=true, or anywhere, a missing
/// privilege is a failure with a reason, never a silent pass.
pub fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests attach XDP programs and create network namespaces: run them as root (`sudo -E cargo xtask test`)"
    );
}
