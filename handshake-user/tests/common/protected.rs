//! A lab whose server runs an echo service on port 8080 behind handshake, attached in
//! native XDP mode on the server's veth (with a pass-through program on the client's, so
//! that XDP_TX frames arrive).

use handshake::{
    kernel_tcp::KernelTcp,
    lab::{CLIENT_IFACE, Lab, SERVER_IFACE, echo::EchoServer, run_in},
    loader::{Handshake, Mode, PassThrough},
};

pub const PORT: u16 = 8080;

pub struct Protected {
    pub lab: Lab,
    pub handshake: Handshake,
    /// The window scale the server's kernel uses, as the loader computed it.
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
    let (handshake, wscale) = attach_on_server(&lab, PORT, timestamps_mode);
    Protected {
        lab,
        handshake,
        wscale,
        _peer: peer,
        _server: server,
    }
}

/// Loads handshake in the lab's server namespace, protecting `port` with a 1460/1440 MSS,
/// and attaches it natively to the server's veth; returns it with the kernel's wscale.
pub fn attach_on_server(lab: &Lab, port: u16, timestamps_mode: bool) -> (Handshake, u8) {
    run_in(&lab.server, move || {
        let kernel = KernelTcp::read().unwrap();
        let mut handshake = Handshake::load().unwrap();
        handshake
            .set_config(&kernel.config(1460, 1440, timestamps_mode).unwrap())
            .unwrap();
        handshake.set_ports(&[port]).unwrap();
        assert_eq!(
            handshake.attach(SERVER_IFACE, Mode::Native).unwrap(),
            Mode::Native
        );
        (handshake, kernel.wscale)
    })
    .unwrap()
}
