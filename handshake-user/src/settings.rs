//! What to protect on one interface, from the command line or a config file, and the
//! checks that run before anything is loaded: a bad value changes nothing.

use handshake_common::config::Config;

use crate::{
    host, interface,
    kernel_tcp::{self, KernelTcp},
    loader::Mode,
    mss,
    prefix::Prefix,
    rate_limits::Limits,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub iface: String,
    pub ports: Vec<u16>,
    pub mode: Mode,
    pub mss: Option<u32>,
    pub timestamps: bool,
    /// Sources whose TCP to the protected ports passes untouched, and is dropped.
    pub allow: Vec<Prefix>,
    pub deny: Vec<Prefix>,
    /// Count every verdict, pass every packet.
    pub dry_run: bool,
    /// The SYN rate limits (all off by default).
    pub limits: Limits,
}

impl Settings {
    /// What the line announcing the protection adds for a dry run.
    pub fn dry_run_note(&self) -> &'static str {
        if self.dry_run {
            ", DRY RUN: verdicts counted, every packet passed"
        } else {
            ""
        }
    }

    /// The program's configuration for this interface in the calling thread's namespace,
    /// or the first thing wrong with the settings.
    pub fn validate(&self) -> anyhow::Result<(Config, KernelTcp)> {
        if let Some(both) = self.allow.iter().find(|prefix| self.deny.contains(prefix)) {
            anyhow::bail!(
                "{both} is on both the allow and the deny list; one prefix cannot be on both: keep it on one"
            );
        }
        let mtu = interface::mtu(&self.iface)?;
        let (mss_ipv4, mss_ipv6) = mss::choose(&self.iface, mtu, self.mss)?;
        let mac = interface::ethernet_mac(&self.iface)?;
        let kernel = KernelTcp::read()?;
        host::vlan_offload::refuse_stripped_tags(&self.iface)?;
        host::nat::refuse_rewritten_ports(&self.ports)?;
        let config = self.limits.apply(&Config {
            mac,
            hop_limit: kernel_tcp::ipv6_hop_limit(&self.iface)?,
            mss_from_mtu: u8::from(self.mss.is_none()),
            dry_run: u8::from(self.dry_run),
            ..kernel.config(mss_ipv4, mss_ipv6, self.timestamps)?
        });
        let answer = host::route_metrics::Answer {
            mtu,
            mss_ipv4,
            mss_ipv6,
            ttl: kernel.ttl,
            hop_limit: config.hop_limit,
        };
        host::route_metrics::refuse_route_metrics(&self.iface, answer)?;
        Ok((config, kernel))
    }
}
