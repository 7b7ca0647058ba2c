//! A namespace lab: a client and a server network namespace joined by a veth pair, with
//! addresses from the benchmarking ranges (198.18.0.0/15, RFC 2544; 2001:2::/48, RFC 5180),
//! so nothing it sends can leave the machine. The demo, the tests and the benchmark run in
//! it.

pub mod echo;
pub mod netns;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, bail};
use handshake_common::config::Config;

pub use self::netns::run_in;
use crate::{
    loader::{Handshake, Mode},
    settings::Settings,
};

pub const SERVER_IFACE: &str = "hs-server";
pub const CLIENT_IFACE: &str = "hs-client";
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);

/// Two namespaces and the veth between them; both are deleted on drop.
pub struct Lab {
    pub server: String,
    pub client: String,
}

impl Lab {
    /// Creates the namespaces `hs-<tag>-<pid>-<n>-{server,client}` so labs of parallel
    /// tests never meet.
    pub fn create(tag: &str) -> anyhow::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "hs-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Self {
            server: format!("{id}-server"),
            client: format!("{id}-client"),
        };
        ip(&["netns", "add", &lab.server])?;
        ip(&["netns", "add", &lab.client])?;
        ip(&[
            "-n",
            &lab.server,
            "link",
            "add",
            SERVER_IFACE,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IFACE,
            "netns",
            &lab.client,
        ])?;
        for (ns, iface, v4, v6) in [
            (&lab.server, SERVER_IFACE, SERVER_V4, SERVER_V6),
            (&lab.client, CLIENT_IFACE, CLIENT_V4, CLIENT_V6),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", iface])?;
            // nodad: the address is usable at once instead of after duplicate detection.
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                iface,
                "nodad",
            ])?;
            // No duplicate detection for the link-local addresses either (nor for those of
            // interfaces a test adds later): an address that turns up a second after the
            // attach would change the local routing table handshake was given.
            for conf in ["default", iface] {
                let name = format!("net.ipv6.conf.{conf}.accept_dad=0");
                ip(&["netns", "exec", ns, "sysctl", "-q", "-w", &name])?;
            }
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", iface, "up"])?;
        }
        // Locally sent packets carry only a partial TCP checksum on veth (checksum offload);
        // a real NIC would complete it, so complete it before it reaches the XDP program.
        lab.exec(&lab.client, &["ethtool", "-K", CLIENT_IFACE, "tx", "off"])?;
        Ok(lab)
    }

    /// Sets a sysctl inside namespace `ns`.
    pub fn sysctl(&self, ns: &str, name: &str, value: &str) -> anyhow::Result<()> {
        self.exec(ns, &["sysctl", "-q", "-w", &format!("{name}={value}")])
    }

    /// Runs a command inside namespace `ns` and fails with its stderr if it fails.
    pub fn exec(&self, ns: &str, command: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["netns", "exec", ns];
        args.extend_from_slice(command);
        ip(&args)
    }

    /// Runs a command inside namespace `ns` and returns its standard output.
    pub fn output(&self, ns: &str, command: &[&str]) -> anyhow::Result<String> {
        let output = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(command)
            .output()?;
        if !output.status.success() {
            bail!(
                "{command:?} in {ns} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// The kernel's TCP counters (`nstat -az`) in namespace `ns`, by name.
    pub fn nstat(&self, ns: &str, name: &str) -> anyhow::Result<u64> {
        let text = self.output(ns, &["nstat", "-az", "--json"])?;
        let key = format!("\"{name}\":");
        let start = text
            .find(&key)
            .with_context(|| format!("nstat has no counter {name}"))?
            + key.len();
        let digits: String = text[start..]
            .chars()
            .skip_while(|c| c.is_whitespace())
            .take_while(char::is_ascii_digit)
            .collect();
        Ok(digits.parse()?)
    }

    /// Loads handshake in the server namespace, protecting `port` with a 1460/1440 MSS and
    /// the kernel's settings, and attaches it natively to the server's veth; returns it
    /// with the window scale the server's kernel uses.
    pub fn attach_handshake(
        &self,
        port: u16,
        timestamps_mode: bool,
    ) -> anyhow::Result<(Handshake, Config)> {
        run_in(&self.server, move || {
            let settings = Settings {
                iface: SERVER_IFACE.to_owned(),
                ports: vec![port],
                mode: Mode::Native,
                mss: None,
                timestamps: timestamps_mode,
                allow: Vec::new(),
                deny: Vec::new(),
                dry_run: false,
                limits: Default::default(),
            };
            let (config, _) = settings.validate()?;
            let mut handshake = Handshake::load()?;
            handshake.set_config(&config)?;
            handshake.set_ports(&[port])?;
            handshake.attach(SERVER_IFACE, Mode::Native)?;
            Ok((handshake, config))
        })?
    }

    /// The server's sysctls for every SYN to be answered at XDP: cookies always
    /// (`tcp_syncookies=2`), and timestamps without the secret offset (`tcp_timestamps=2`),
    /// since real clients offer timestamps and with 1 their SYNs are the kernel's.
    pub fn cookies_at_xdp(&self) -> anyhow::Result<()> {
        self.sysctl(&self.server, "net.ipv4.tcp_syncookies", "2")?;
        self.sysctl(&self.server, "net.ipv4.tcp_timestamps", "2")
    }

    pub fn server_addr(v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(SERVER_V6)
        } else {
            IpAddr::V4(SERVER_V4)
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the peer.
        let _ = ip(&["netns", "del", &self.server]);
        let _ = ip(&["netns", "del", &self.client]);
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` failed; install iproute2")?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
