//! The network interface handshake attaches to, looked up in the calling thread's network
//! namespace (so a thread that entered a namespace sees that namespace's interfaces).

use std::{ffi::CString, io};

use anyhow::{Context as _, anyhow, bail};

pub fn index(iface: &str) -> anyhow::Result<u32> {
    check_name(iface)?;
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

/// One SIOCETHTOOL request about `iface`: `command` points at an ethtool command
/// structure (include/uapi/linux/ethtool.h) that starts with its ETHTOOL_* word; the kernel
/// fills in the rest.
pub fn ethtool(iface: &str, command: *mut libc::c_void, what: &str) -> anyhow::Result<()> {
    ioctl_with(iface, libc::SIOCETHTOOL, what, |request| {
        request.ifr_ifru.ifru_data = command.cast();
    })?;
    Ok(())
}

/// One `ifreq` ioctl about `iface` on a datagram socket of the calling thread's namespace.
fn ioctl(iface: &str, request_code: libc::Ioctl, what: &str) -> anyhow::Result<libc::ifreq> {
    ioctl_with(iface, request_code, what, |_| {})
}

fn ioctl_with(
    iface: &str,
    request_code: libc::Ioctl,
    what: &str,
    fill: impl FnOnce(&mut libc::ifreq),
) -> anyhow::Result<libc::ifreq> {
    index(iface)?;
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(iface.bytes()) {
        *slot = byte as libc::c_char;
    }
    fill(&mut request);
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

/// The XDP program an interface runs, as `ip -details -json link` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpProgram {
    pub iface: String,
    pub id: u32,
    pub name: String,
}

/// The XDP program attached to `iface` (iproute2 reads it over netlink: IFLA_XDP).
pub fn xdp_program(iface: &str) -> Option<XdpProgram> {
    xdp_programs_of(&["dev", iface]).into_iter().next()
}

/// Every interface of this namespace that runs an XDP program.
pub fn xdp_programs() -> Vec<XdpProgram> {
    xdp_programs_of(&[])
}

/// The links of this thread's namespace as `ip -details -json link show [which]` prints
/// them (iproute2 asks netlink, which answers for the calling thread's namespace; sysfs
/// would show the namespace it was mounted in); empty when `ip` fails.
pub fn links(which: &[&str]) -> Vec<serde_json::Value> {
    let output = std::process::Command::new("ip")
        .args(["-details", "-json", "link", "show"])
        .args(which)
        .output();
    output
        .ok()
        .and_then(|output| serde_json::from_slice(&output.stdout).ok())
        .unwrap_or_default()
}

fn xdp_programs_of(which: &[&str]) -> Vec<XdpProgram> {
    links(which)
        .iter()
        .filter_map(|link| {
            let prog = link.get("xdp")?.get("prog")?;
            Some(XdpProgram {
                iface: link.get("ifname")?.as_str()?.to_owned(),
                id: u32::try_from(prog.get("id")?.as_u64()?).ok()?,
                name: prog.get("name")?.as_str().unwrap_or("?").to_owned(),
            })
        })
        .collect()
}

/// Refuses what the kernel would never name an interface (`dev_valid_name`): a name is
/// also a folder under the pin root, and `../x` must not reach outside it.
pub fn check_name(iface: &str) -> anyhow::Result<()> {
    let valid = !iface.is_empty()
        && iface.len() < libc::IFNAMSIZ
        && iface != "."
        && iface != ".."
        && !iface
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
    if !valid {
        bail!(
            "{iface:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces); `ip link` lists interfaces"
        );
    }
    Ok(())
}

/// The calling thread's network namespace cookie (SO_NETNS_COOKIE, Linux 5.14): unlike
/// the namespace's inode number, it is never reused while the system runs.
pub fn netns_cookie() -> anyhow::Result<u64> {
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(io::Error::last_os_error()).context("opening a socket failed");
    }
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    let result = unsafe {
        libc::getsockopt(
            socket,
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut len,
        )
    };
    let error = io::Error::last_os_error();
    unsafe { libc::close(socket) };
    if result != 0 {
        return Err(error).context("reading the network namespace cookie failed (Linux 5.14+)");
    }
    Ok(cookie)
}
