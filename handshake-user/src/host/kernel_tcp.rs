//! The TCP sysctls of the network namespace handshake runs in, and what they mean for
//! cookies answered at XDP. Read from /proc/sys/net, which shows the namespace of the
//! reading thread.

use std::{fs, io, os::fd::AsRawFd as _, thread};

use anyhow::{Context as _, bail};
use handshake_common::{
    config::{Config, DEFAULT_FLOOD_SYN_ACKS},
    listener,
    tcp::MAX_WSCALE,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelTcp {
    pub syncookies: u32,
    pub timestamps: u32,
    /// `net.ipv4.ip_default_ttl`.
    pub ttl: u8,
    /// The window scale `tcp_select_initial_window` picks for an accepted socket.
    pub wscale: u8,
    /// Where `net.core.rmem_max` came from: this namespace, or the host-wide value.
    pub rmem_max: RmemMax,
}

/// `net.core.rmem_max` is per network namespace only from Linux 6.15 on; before, the
/// sysctl is missing from /proc/sys in any namespace but the initial one, and the kernel
/// uses the initial namespace's value everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmemMax {
    Namespace(u32),
    /// Read in the initial network namespace (through PID 1's).
    HostWide(u32),
    /// Neither readable (PID 1 in a container's namespace): the kernel's default.
    Default(u32),
}

/// `SK_RMEM_MAX` with 4 KiB pages (include/net/sock.h): what an untouched host has.
const DEFAULT_RMEM_MAX: u32 = 212_992;

impl RmemMax {
    pub const fn value(self) -> u32 {
        match self {
            Self::Namespace(value) | Self::HostWide(value) | Self::Default(value) => value,
        }
    }

    pub fn read() -> anyhow::Result<Self> {
        const NAME: &str = "net.core.rmem_max";
        match read_u32(NAME) {
            Ok(value) => return Ok(Self::Namespace(value)),
            Err(error) if !is_not_found(&error) => return Err(error),
            Err(_) => {}
        }
        // A thread of our own may join PID 1's namespace without moving the process.
        let host = thread::spawn(|| -> anyhow::Result<u32> {
            let ns = fs::File::open("/proc/1/ns/net")?;
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error().into());
            }
            read_u32(NAME)
        })
        .join();
        Ok(match host {
            Ok(Ok(value)) => Self::HostWide(value),
            _ => Self::Default(DEFAULT_RMEM_MAX),
        })
    }
}

fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<io::Error>()
        .is_some_and(|error| error.kind() == io::ErrorKind::NotFound)
}

fn read(name: &str) -> anyhow::Result<String> {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    fs::read_to_string(&path).with_context(|| format!("reading {path} failed"))
}

fn read_u32(name: &str) -> anyhow::Result<u32> {
    let text = read(name)?;
    text.trim()
        .parse()
        .with_context(|| format!("{name} holds {text:?}, not a number"))
}

impl KernelTcp {
    pub fn read() -> anyhow::Result<Self> {
        let tcp_rmem: Vec<u32> = read("net.ipv4.tcp_rmem")?
            .split_whitespace()
            .filter_map(|value| value.parse().ok())
            .collect();
        let &[_, _, tcp_rmem_max] = tcp_rmem.as_slice() else {
            bail!("net.ipv4.tcp_rmem holds {tcp_rmem:?}, not three numbers");
        };
        let rmem_max = RmemMax::read()?;
        Ok(Self {
            syncookies: read_u32("net.ipv4.tcp_syncookies")?,
            timestamps: read_u32("net.ipv4.tcp_timestamps")?,
            ttl: read_u32("net.ipv4.ip_default_ttl")?.clamp(1, 255) as u8,
            wscale: initial_wscale(tcp_rmem_max.max(rmem_max.value())),
            rmem_max,
        })
    }

    /// The configuration the XDP program gets. The TCP sysctls it reads itself, per SYN,
    /// from the listener's namespace (so a change while attached is followed); what it
    /// cannot read (`net.core.rmem_max`, the interface's hop limit) is written here.
    /// `--timestamps` asks for answers with TS, so it is refused unless the sysctl allows
    /// them.
    pub fn config(&self, mss_ipv4: u16, mss_ipv6: u16, timestamps: bool) -> anyhow::Result<Config> {
        if timestamps && self.timestamps != 2 {
            bail!(
                "--timestamps needs net.ipv4.tcp_timestamps=2 (it is {}): with 1 the kernel offsets the echoed timestamp by a per-connection secret and decodes the options from it at random; run `sysctl -w net.ipv4.tcp_timestamps=2` or leave out --timestamps",
                self.timestamps
            );
        }
        Ok(Config {
            mss_ipv4,
            mss_ipv6,
            hop_limit: DEFAULT_HOP_LIMIT,
            flood_syn_acks: DEFAULT_FLOOD_SYN_ACKS,
            rmem_max: self.rmem_max.value(),
            ..Config::default()
        })
    }

    /// What the sysctls mean for a server behind handshake, one line each.
    pub fn describe(&self) -> [String; 3] {
        let cookies = match self.syncookies {
            0 => "tcp_syncookies=0: the kernel issues no cookies, so handshake answers no SYN; set it to 1 or 2".to_owned(),
            1 => "tcp_syncookies=1: the kernel answers SYNs while its SYN queue has room; handshake answers at XDP once it overflows (a flood)".to_owned(),
            2 => "tcp_syncookies=2: every SYN to a protected port is answered at XDP with a cookie".to_owned(),
            other => format!("tcp_syncookies={other}: unknown value"),
        };
        let timestamps = match self.timestamps {
            0 => "tcp_timestamps=0: cookie SYN-ACKs carry MSS only, as the kernel's do".to_owned(),
            2 => "tcp_timestamps=2: SYNs with timestamps get them back, with window scaling and SACK, as from the kernel".to_owned(),
            other => format!(
                "tcp_timestamps={other}: SYNs with timestamps (most clients' real SYNs) go to the kernel, whose timestamps carry a secret offset handshake cannot compute; set net.ipv4.tcp_timestamps=2 to have handshake answer them"
            ),
        };
        let rmem_max = match self.rmem_max {
            RmemMax::Namespace(value) => {
                format!("net.core.rmem_max={value} (this network namespace)")
            }
            RmemMax::HostWide(value) => format!(
                "net.core.rmem_max={value}: the host-wide value, which this kernel uses in every network namespace"
            ),
            RmemMax::Default(value) => format!(
                "net.core.rmem_max is readable neither here nor in PID 1's network namespace; assuming the kernel default {value}"
            ),
        };
        [cookies, timestamps, rmem_max]
    }
}

/// `IPV6_DEFAULT_HOPLIMIT`: what an interface's `hop_limit` starts as.
const DEFAULT_HOP_LIMIT: u8 = 64;

/// `net.ipv6.conf.IF.hop_limit`, the hop limit of what the kernel sends out of `iface`
/// (`ip6_dst_hoplimit`). Read by path: an interface name may hold dots (`eth0.100`).
/// Where IPv6 is off on the host there is no such file, and no IPv6 SYN to answer.
pub fn ipv6_hop_limit(iface: &str) -> anyhow::Result<u8> {
    let path = format!("/proc/sys/net/ipv6/conf/{iface}/hop_limit");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(DEFAULT_HOP_LIMIT),
        Err(error) => {
            return Err(anyhow::Error::from(error).context(format!("reading {path} failed")));
        }
    };
    let hop_limit: u32 = text
        .trim()
        .parse()
        .with_context(|| format!("{path} holds {text:?}, not a number"))?;
    Ok(hop_limit.clamp(1, 255) as u8)
}

/// `tcp_select_initial_window` (net/ipv4/tcp_output.c): the scale that lets the largest
/// receive buffer (max of tcp_rmem[2] and rmem_max) fit a 16-bit window, at most 14.
pub fn initial_wscale(space: u32) -> u8 {
    listener::ilog2(space)
        .saturating_sub(15)
        .min(u32::from(MAX_WSCALE)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wscale_follows_the_largest_buffer() {
        assert_eq!(initial_wscale(33_554_432), 10); // Linux 6.18's tcp_rmem[2]
        assert_eq!(initial_wscale(6_291_456), 7); // Linux 5.x-6.15
        assert_eq!(initial_wscale(65_535), 0);
        assert_eq!(initial_wscale(u32::MAX), 14);
    }

    #[test]
    fn timestamps_need_mode_2() {
        let kernel = KernelTcp {
            syncookies: 2,
            timestamps: 1,
            ttl: 64,
            wscale: 10,
            rmem_max: RmemMax::Namespace(DEFAULT_RMEM_MAX),
        };
        let error = kernel.config(1460, 1440, true).unwrap_err().to_string();
        assert!(
            error.starts_with("--timestamps needs net.ipv4.tcp_timestamps=2 (it is 1)"),
            "{error}"
        );
        let config = KernelTcp {
            timestamps: 2,
            ..kernel
        }
        .config(1460, 1440, true)
        .unwrap();
        assert_eq!(
            config,
            Config {
                mss_ipv4: 1460,
                mss_ipv6: 1440,
                hop_limit: 64,
                flood_syn_acks: DEFAULT_FLOOD_SYN_ACKS,
                rmem_max: DEFAULT_RMEM_MAX,
                ..Config::default()
            }
        );
    }
}
