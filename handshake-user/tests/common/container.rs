//! A third namespace behind a lab's server, as a Docker container sits behind its host:
//! a veth from the server (`hs-ctr`, 198.18.7.1) to the container (198.18.7.2), the server
//! forwarding, and an echo service in the container on port 80.

use std::process::Command;

use handshake::lab::{Lab, echo::EchoServer};

pub const SERVER_SIDE: &str = "hs-ctr";
pub const CONTAINER_V4: &str = "198.18.7.2";
pub const SERVICE_PORT: u16 = 80;

pub struct Container {
    pub ns: String,
    _service: Option<EchoServer>,
}

impl Container {
    /// The container namespace `<server namespace>-ctr`, deleted on drop.
    pub fn behind(lab: &Lab) -> Self {
        let ns = format!("{}-ctr", lab.server);
        let mut container = Self {
            ns: ns.clone(),
            _service: None,
        };
        ip(&["netns", "add", &ns]);
        let server = &lab.server;
        ip(&[
            "-n",
            server,
            "link",
            "add",
            SERVER_SIDE,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        ip(&[
            "-n",
            server,
            "addr",
            "add",
            "198.18.7.1/24",
            "dev",
            SERVER_SIDE,
        ]);
        ip(&["-n", server, "link", "set", SERVER_SIDE, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{CONTAINER_V4}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "route", "add", "default", "via", "198.18.7.1"]);
        lab.sysctl(server, "net.ipv4.ip_forward", "1").unwrap();
        container._service = Some(EchoServer::start(&ns, SERVICE_PORT).unwrap());
        container
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self._service.take();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}
