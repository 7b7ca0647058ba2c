//! Pin folders of network namespaces that are gone. Deleting a namespace deletes its
//! interfaces, and the kernel detaches the XDP links from them, but not the pins: the
//! folder `netns-COOKIE` keeps the program and its maps in kernel memory until someone
//! removes it, and no command run in a namespace alive looks at another's folder. So
//! `status` lists them, from any namespace, and `detach --gone` removes them.
//!
//! A folder is called gone only when two facts agree, each read from the kernel:
//! - no namespace alive has its cookie (host/namespaces.rs). Cookies are never reused, so
//!   a namespace that is gone never comes back and its folder can only be garbage;
//! - no XDP link pinned in it is attached to an interface. The kernel detaches a link when
//!   its interface is unregistered, as every virtual interface is when its namespace is
//!   destroyed. A namespace alive but held only by a socket (which no enumeration finds)
//!   still has its interfaces, so its folder is not called gone; nor is one whose
//!   interface lives on elsewhere (moved to another namespace) still running the program.
//!
//! When either fact cannot be read, the folder is not called gone: `status` says nothing
//! rather than something wrong.

use std::{
    ffi::CString,
    io,
    mem::size_of,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

use crate::{
    host::namespaces,
    pins::{self, PinRoot},
};

/// The folder of a namespace that is gone, and the interfaces it holds pins for.
pub struct GoneFolder {
    pub folder: PinRoot,
    pub interfaces: Vec<String>,
}

/// The folders under `root` of namespaces that are gone, by cookie. An error when the
/// namespaces alive cannot all be seen (see `namespaces::live_cookies`).
pub fn find(root: &PinRoot) -> anyhow::Result<Vec<GoneFolder>> {
    // The folders first, then the namespaces alive: a folder made after the enumeration, by
    // a namespace created after it, would otherwise look gone.
    let others: Vec<u64> = root
        .namespace_cookies()
        .into_iter()
        .filter(|cookie| *cookie != root.cookie())
        .collect();
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let live = namespaces::live_cookies()?;
    let mut gone = Vec::new();
    for cookie in others.into_iter().filter(|cookie| !live.contains(cookie)) {
        let folder = root.of_cookie(cookie);
        let interfaces = folder.interfaces()?;
        let detached = interfaces
            .iter()
            .all(|iface| !attached(&folder.iface_dir(iface).join(pins::LINK)));
        if detached {
            gone.push(GoneFolder { folder, interfaces });
        }
    }
    Ok(gone)
}

/// Whether the XDP link pinned at `pin` is attached to an interface. No pin (an attach
/// that did not finish) attaches nothing; a pin that cannot be read might: true.
pub fn attached(pin: &Path) -> bool {
    match link_ifindex(pin) {
        Ok(ifindex) => ifindex != 0,
        Err(error) => error.kind() != io::ErrorKind::NotFound,
    }
}

/// The interface index of the XDP link pinned at `pin`, 0 once the kernel has detached it
/// (`bpf_xdp_link_fill_link_info`): BPF_OBJ_GET, then BPF_OBJ_GET_INFO_BY_FD
/// (include/uapi/linux/bpf.h). aya's `LinkInfo` does not give the ifindex.
pub fn link_ifindex(pin: &Path) -> io::Result<u32> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_TYPE_XDP: u32 = 6;
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
    }
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let path = CString::new(pin.as_os_str().as_bytes())?;
    let mut get = ObjGet {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        // A link is opened read-write or not at all.
        file_flags: 0,
    };
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            &raw mut get,
            size_of::<ObjGet>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let link = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // struct bpf_link_info: type, id, prog_id, then a union aligned to 8 bytes whose `xdp`
    // member is { __u32 ifindex; }: the fifth 32-bit word.
    let mut info = [0u32; 16];
    let mut request = InfoByFd {
        bpf_fd: link.as_raw_fd() as u32,
        info_len: size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &raw mut request,
            size_of::<InfoByFd>(),
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    if info[0] != BPF_LINK_TYPE_XDP {
        return Err(io::Error::other(format!(
            "{} is not an XDP link (link type {})",
            pin.display(),
            info[0]
        )));
    }
    Ok(info[4])
}
