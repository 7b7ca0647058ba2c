//! The five ways to face the flood, each set up on the same lab and torn down after:
//! the kernel alone with `tcp_syncookies=1` and `=2`, nftables synproxy in front of the
//! service, and handshake (native XDP on the server's veth) with `=2` and `=1`.
//!
//! The server veth always carries an XDP program, handshake or the pass-through one, so
//! that every contender receives through the same veth path (XDP_TX frames from the
//! generator are only delivered to a veth that has one).

use std::fs;

use anyhow::Context as _;
use handshake::{
    counters::Snapshot,
    kernel_tcp::KernelTcp,
    lab::{Lab, SERVER_IFACE, run_in},
    loader::{Handshake, PassThrough},
};

use super::nginx::PORT;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    Kernel1,
    Kernel2,
    Synproxy,
    Handshake2,
    Handshake1,
}

impl Contender {
    pub const ALL: [Contender; 5] = [
        Self::Kernel1,
        Self::Kernel2,
        Self::Synproxy,
        Self::Handshake2,
        Self::Handshake1,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Kernel1 => "kernel syncookies=1",
            Self::Kernel2 => "kernel syncookies=2",
            Self::Synproxy => "nftables synproxy",
            Self::Handshake2 => "handshake syncookies=2",
            Self::Handshake1 => "handshake syncookies=1",
        }
    }

    pub const fn key(self) -> &'static str {
        match self {
            Self::Kernel1 => "kernel_syncookies_1",
            Self::Kernel2 => "kernel_syncookies_2",
            Self::Synproxy => "nft_synproxy",
            Self::Handshake2 => "handshake_syncookies_2",
            Self::Handshake1 => "handshake_syncookies_1",
        }
    }

    const fn syncookies(self) -> &'static str {
        match self {
            Self::Kernel2 | Self::Handshake2 => "2",
            _ => "1",
        }
    }
}

/// A contender in place; dropping it takes it away.
pub enum Setup<'lab> {
    Pass { _pass: PassThrough },
    Synproxy { _pass: PassThrough, lab: &'lab Lab },
    Handshake(Box<Handshake>),
}

pub fn set_up(lab: &Lab, contender: Contender) -> anyhow::Result<Setup<'_>> {
    lab.sysctl(
        &lab.server,
        "net.ipv4.tcp_syncookies",
        contender.syncookies(),
    )?;
    // Every contender alike: with tcp_timestamps=1 handshake leaves SYNs that offer
    // timestamps (the real clients') to the kernel, whose TSval it cannot write.
    lab.sysctl(&lab.server, "net.ipv4.tcp_timestamps", "2")?;
    Ok(match contender {
        Contender::Kernel1 | Contender::Kernel2 => Setup::Pass {
            _pass: pass_through(lab)?,
        },
        Contender::Synproxy => {
            let pass = pass_through(lab)?;
            synproxy_rules(lab)?;
            Setup::Synproxy { _pass: pass, lab }
        }
        Contender::Handshake1 | Contender::Handshake2 => {
            Setup::Handshake(Box::new(lab.attach_handshake(PORT, false)?.0))
        }
    })
}

impl Setup<'_> {
    /// handshake's verdict counters, when handshake is the contender.
    pub fn counters(&self) -> Option<Snapshot> {
        match self {
            Setup::Handshake(handshake) => handshake.counters().ok(),
            _ => None,
        }
    }

    /// (run_time_ns, run_count) of handshake's program (kernel.bpf_stats_enabled).
    pub fn bpf_stats(&mut self) -> Option<(u64, u64)> {
        let Setup::Handshake(handshake) = self else {
            return None;
        };
        let info = handshake.program().ok()?.info().ok()?;
        Some((info.run_time().as_nanos() as u64, info.run_count()))
    }
}

impl Drop for Setup<'_> {
    fn drop(&mut self) {
        if let Setup::Synproxy { lab, .. } = self {
            let _ = lab.exec(
                &lab.server,
                &["nft", "delete", "table", "ip", "handshake_bench"],
            );
        }
    }
}

fn pass_through(lab: &Lab) -> anyhow::Result<PassThrough> {
    run_in(&lab.server, || PassThrough::attach(SERVER_IFACE))?
}

/// The synproxy recipe of the nftables documentation, for the service port only: the SYN
/// is not tracked (raw priority), synproxy answers it with a cookie and, once the client's
/// ACK checks out, opens the connection to the service itself. The options it announces
/// must be the server's own (window scale from the server's buffers).
fn synproxy_rules(lab: &Lab) -> anyhow::Result<()> {
    let wscale = run_in(&lab.server, KernelTcp::read)??.wscale;
    let rules = format!(
        "table ip handshake_bench {{\n\
  chain prerouting {{\n    type filter hook prerouting priority raw; policy accept;\n    tcp dport {PORT} tcp flags syn notrack\n  }}\n\
  chain input {{\n    type filter hook input priority filter; policy accept;\n    tcp dport {PORT} ct state invalid,untracked synproxy mss 1460 wscale {wscale} timestamp sack-perm\n    ct state invalid drop\n  }}\n}}\n"
    );
    let path = std::env::temp_dir().join(format!("{}-synproxy.nft", lab.server));
    fs::write(&path, rules)?;
    let loaded = lab.exec(&lab.server, &["nft", "-f", &path.display().to_string()]);
    let _ = fs::remove_file(&path);
    loaded.context("loading the synproxy rules failed; `cargo xtask bench` installs nftables")?;
    // The recipe: ACKs that conntrack has not seen must stay invalid for synproxy to see them.
    lab.sysctl(&lab.server, "net.netfilter.nf_conntrack_tcp_loose", "0")
}
