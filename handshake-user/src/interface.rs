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
    let request = ioctl(iface, libc::SIOCGIFMTU, "MTU")?;
    Ok(unsafe { request.ifr_ifru.ifru_mtu } as u32)
}

/// One `ifreq` ioctl about `iface` on a datagram socket of the calling thread's namespace.
fn ioctl(iface: &str, request_code: libc::Ioctl, what: &str) -> anyhow::Result<libc::ifreq> {
    index(iface)?;
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(iface.bytes()) {
        *slot = byte as libc::c_char;
    }
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(io::Error::last_os_error().into());
    }
    let result = unsafe { libc::ioctl(socket, request_code, &mut request) };
    let error = io::Error::last_os_error();
    unsafe { libc::close(socket) };
    if result < 0 {
        bail!("reading the {what} of {iface} failed: {error}");
    }
    Ok(request)
}

/// The interface's MAC address (SIOCGIFHWADDR in the calling thread's namespace).
pub fn mac(iface: &str) -> anyhow::Result<[u8; 6]> {
    Ok(hardware_address(iface)?.1)
}

/// The MAC of an Ethernet interface, refusing any other kind: the XDP program reads an
/// Ethernet header and answers to its source MAC. On loopback every local connection
/// would be answered by a program that cannot route it back; on a layer-3 device (tun,
/// wireguard, ppp) frames start with the IP header and nothing would be protected.
pub fn ethernet_mac(iface: &str) -> anyhow::Result<[u8; 6]> {
    let (kind, mac) = hardware_address(iface)?;
    match kind {
        libc::ARPHRD_ETHER => Ok(mac),
        libc::ARPHRD_LOOPBACK => bail!(
            "{iface} is the loopback interface: handshake protects what arrives from the network; local clients reach the kernel directly and need no cookies"
        ),
        other => bail!(
            "{iface} is not an Ethernet interface (ARPHRD {other}): handshake reads Ethernet frames; attach it to the Ethernet interface the traffic arrives on"
        ),
    }
}

/// The link type (ARPHRD_*) and the first six bytes of the hardware address.
fn hardware_address(iface: &str) -> anyhow::Result<(u16, [u8; 6])> {
    let request = ioctl(iface, libc::SIOCGIFHWADDR, "MAC address")?;
    let address = unsafe { request.ifr_ifru.ifru_hwaddr };
    let mac = std::array::from_fn(|i| address.sa_data[i] as u8);
    Ok((address.sa_family, mac))
}

/// The XDP program attached to `iface`, as "id N, name X", from `ip -details -json link`
/// (iproute2 reads it over netlink: IFLA_XDP).
pub fn xdp_program(iface: &str) -> Option<String> {
    let output = std::process::Command::new("ip")
        .args(["-details", "-json", "link", "show", "dev", iface])
        .output()
        .ok()?;
    let links: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let prog = &links.get(0)?.get("xdp")?.get("prog")?;
    let id = prog.get("id")?.as_u64()?;
    let name = prog
        .get("name")
        .and_then(|name| name.as_str())
        .unwrap_or("?");
    Some(format!("id {id}, name {name}"))
}
