//! What a connection negotiated, as the kernel reports it in TCP_INFO, and a client that
//! carries data both ways through the lab's echo server.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
};

use handshake::lab::echo;

/// tcp_info's tcpi_options bits (include/uapi/linux/tcp.h).
pub const TCPI_OPT_TIMESTAMPS: u8 = 1;
pub const TCPI_OPT_SACK: u8 = 2;
pub const TCPI_OPT_WSCALE: u8 = 4;
pub const TCPI_OPT_ECN: u8 = 8;

/// The parts of `struct tcp_info` the handshake decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    pub options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub snd_mss: u32,
    pub advmss: u32,
}

impl TcpInfo {
    pub fn of(stream: &TcpStream) -> TcpInfo {
        let mut info = [0u8; 232];
        let mut len = info.len() as libc::socklen_t;
        let result = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        assert_eq!(result, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
        let word = |at: usize| u32::from_ne_bytes(info[at..at + 4].try_into().unwrap());
        // Byte 5 is tcpi_options; byte 6 holds snd_wscale (low nibble) and rcv_wscale
        // (high nibble); tcpi_snd_mss is at 16, tcpi_advmss at 84.
        TcpInfo {
            options: info[5],
            snd_wscale: info[6] & 0xf,
            rcv_wscale: info[6] >> 4,
            snd_mss: word(16),
            advmss: word(84),
        }
    }
}

/// Connects to the echo server, sends `size` bytes while reading them back, and returns
/// what the client's side negotiated.
pub fn echo(server: SocketAddr, size: usize) -> TcpInfo {
    let mut stream = echo::connect(server)
        .unwrap_or_else(|error| panic!("connecting to {server} failed: {error:#}"));
    let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let message = message.clone();
        std::thread::spawn(move || stream.write_all(&message).unwrap())
    };
    let mut reply = vec![0u8; size];
    stream
        .read_exact(&mut reply)
        .unwrap_or_else(|error| panic!("echo from {server} failed: {error}"));
    writer.join().unwrap();
    assert!(reply == message, "{server} echoed different bytes");
    TcpInfo::of(&stream)
}
