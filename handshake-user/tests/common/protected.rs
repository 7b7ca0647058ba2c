//! A lab whose server runs an echo service on port 8080 behind handshake, attached in
//! native XDP mode on the server's veth (with a pass-through program on the client's, so
//! that XDP_TX frames arrive).

use handshake::{
    kernel_tcp::KernelTcp,
    lab::{CLIENT_IFACE, Lab, echo::EchoServer, run_in},
    loader::{Handshake, PassThrough},
};
use handshake_common::config::Config;

pub const PORT: u16 = 8080;

pub struct Protected {
    pub lab: Lab,
    pub handshake: Handshake,
    /// What the loader configured.
    pub config: Config,
    /// The window scale the server's kernel gives a listener with default buffers.
    pub wscale: u8,
    _peer: PassThrough,
    _server: EchoServer,
}

/// A lab whose server runs an echo service behind handshake.
pub fn protect(syncookies: &str, tcp_timestamps: &str, timestamps_mode: bool) -> Protected {
    super::require_root();
    let lab = Lab::create("e2e").unwrap();
    lab.sysctl(&lab.server, "net.ipv4.tcp_syncookies", syncookies)
        .unwrap();
    lab.sysctl(&lab.server, "net.ipv4.tcp_timestamps", tcp_timestamps)
        .unwrap();
    let server = EchoServer::start(&lab.server, PORT).unwrap();
    let peer = run_in(&lab.client, || PassThrough::attach(CLIENT_IFACE))
        .unwrap()
        .unwrap();
    let (handshake, config) = lab.attach_handshake(PORT, timestamps_mode).unwrap();
    let wscale = run_in(&lab.server, KernelTcp::read)
        .unwrap()
        .unwrap()
        .wscale;
    Protected {
        lab,
        handshake,
        config,
        wscale,
        _peer: peer,
        _server: server,
    }
}

impl Protected {
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut Config)) {
        change(&mut self.config);
        self.handshake.set_config(&self.config).unwrap();
    }
}
