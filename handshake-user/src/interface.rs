//! The network interface handshake attaches to, looked up in the calling thread's network
//! namespace (so a thread that entered a namespace sees that namespace's interfaces).

use std::{ffi::CString, io};

use anyhow::{anyhow, bail};

pub fn index(iface: &str) -> anyhow::Result<u32> {
    let name =
        CString::new(iface).map_err(|_| anyhow!("interface name {iface:?} contains a NUL byte"))?;
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        bail!("interface {iface} not found; `ip link` lists interfaces");
    }
    Ok(index)
}

/// The interface MTU (SIOCGIFMTU on a socket of this namespace; /sys/class/net would show
/// the namespace sysfs was mounted in instead).
pub fn mtu(iface: &str) -> anyhow::Result<u32> {
    index(iface)?;
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(iface.bytes()) {
        *slot = byte as libc::c_char;
    }
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(io::Error::last_os_error().into());
    }
    let result = unsafe { libc::ioctl(socket, libc::SIOCGIFMTU, &mut request) };
    let error = io::Error::last_os_error();
    unsafe { libc::close(socket) };
    if result < 0 {
        bail!("reading the MTU of {iface} failed: {error}");
    }
    Ok(unsafe { request.ifr_ifru.ifru_mtu } as u32)
}

/// The interface's MAC address (SIOCGIFHWADDR in the calling thread's namespace).
pub fn mac(iface: &str) -> anyhow::Result<[u8; 6]> {
    index(iface)?;
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(iface.bytes()) {
        *slot = byte as libc::c_char;
    }
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(io::Error::last_os_error().into());
    }
    let result = unsafe { libc::ioctl(socket, libc::SIOCGIFHWADDR, &mut request) };
    let error = io::Error::last_os_error();
    unsafe { libc::close(socket) };
    if result < 0 {
        bail!("reading the MAC address of {iface} failed: {error}");
    }
    let data = unsafe { request.ifr_ifru.ifru_hwaddr.sa_data };
    Ok(std::array::from_fn(|i| data[i] as u8))
}
