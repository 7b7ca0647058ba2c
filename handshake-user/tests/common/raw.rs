//! Raw frames from the client's namespace (AF_PACKET), as a forger would send them.

use handshake::{
    interface,
    lab::{CLIENT_IFACE, Lab, SERVER_IFACE, run_in},
};

/// Sends raw frames out of the client's veth (AF_PACKET), as a forger would, to the
/// server's MAC.
pub fn send_frames(lab: &Lab, frames: Vec<Vec<u8>>) {
    send(lab, frames, true);
}

/// Sends raw frames to the destination MAC they were built with (a neighbour's).
pub fn send_frames_as_addressed(lab: &Lab, frames: Vec<Vec<u8>>) {
    send(lab, frames, false);
}

fn send(lab: &Lab, frames: Vec<Vec<u8>>, to_server_mac: bool) {
    let server_mac = lab
        .output(
            &lab.server,
            &["cat", &format!("/sys/class/net/{SERVER_IFACE}/address")],
        )
        .unwrap();
    let mac: Vec<u8> = server_mac
        .trim()
        .split(':')
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect();
    run_in(&lab.client, move || {
        let index = interface::index(CLIENT_IFACE).unwrap();
        let socket = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(socket >= 0, "AF_PACKET socket");
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = index as i32;
        address.sll_halen = 6;
        address.sll_addr[..6].copy_from_slice(&mac);
        for (index, mut frame) in frames.into_iter().enumerate() {
            // Paced: the server veth's XDP ring holds a few hundred frames, and a frame
            // that finds it full is dropped before XDP sees (and counts) it.
            if index % 64 == 63 {
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            if to_server_mac {
                frame[..6].copy_from_slice(&mac);
            }
            // A full transmit queue (ENOBUFS; a slow emulated VM gets there) is waited out,
            // a bounded number of times, so that every frame is sent exactly once.
            let mut retries = 0;
            loop {
                let sent = unsafe {
                    libc::sendto(
                        socket,
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&address as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    )
                };
                let error = std::io::Error::last_os_error();
                if sent < 0 && error.raw_os_error() == Some(libc::ENOBUFS) && retries < 1000 {
                    retries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                assert_eq!(sent, frame.len() as isize, "sendto: {error}");
                break;
            }
        }
        unsafe { libc::close(socket) };
    })
    .unwrap();
}

/// Sends `syn` out of the client's veth, from the veth's own MAC as a real client's SYN
/// comes, and returns the first SYN-ACK that comes back to its source port within two
/// seconds (an AF_PACKET socket on the client's veth sees every frame that arrives there),
/// or `None`.
pub fn syn_ack_for(lab: &Lab, syn: Vec<u8>) -> Option<Vec<u8>> {
    reply(lab, syn, true)
}

/// `syn_ack_for` a SYN sent to the destination MAC it was built with.
pub fn syn_ack_for_as_addressed(lab: &Lab, syn: Vec<u8>) -> Option<Vec<u8>> {
    reply(lab, syn, false)
}

fn reply(lab: &Lab, mut syn: Vec<u8>, to_server_mac: bool) -> Option<Vec<u8>> {
    let client_mac = run_in(&lab.client, || interface::mac(CLIENT_IFACE))
        .unwrap()
        .unwrap();
    syn[6..12].copy_from_slice(&client_mac);
    let l3 = 14;
    let source_port = match syn[12..14] {
        [0x08, 0x00] => u16::from_be_bytes([syn[l3 + 20], syn[l3 + 21]]),
        _ => u16::from_be_bytes([syn[l3 + 40], syn[l3 + 41]]),
    };
    let listening = listen_on_client(lab, 200_000);
    send(lab, vec![syn], to_server_mac);
    run_in(&lab.client, move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut buffer = vec![0u8; 2048];
        while std::time::Instant::now() < deadline {
            let read =
                unsafe { libc::recv(listening, buffer.as_mut_ptr().cast(), buffer.len(), 0) };
            if read <= 0 {
                continue;
            }
            let frame = &buffer[..read as usize];
            let tcp = match frame.get(12..14) {
                Some([0x08, 0x00]) if frame.len() >= l3 + 20 && frame[l3 + 9] == 6 => {
                    l3 + usize::from(frame[l3] & 0xf) * 4
                }
                Some([0x86, 0xdd]) if frame.len() >= l3 + 40 && frame[l3 + 6] == 6 => l3 + 40,
                _ => continue,
            };
            if frame.len() >= tcp + 20
                && u16::from_be_bytes([frame[tcp + 2], frame[tcp + 3]]) == source_port
                && frame[tcp + 13] & 0x12 == 0x12
            {
                unsafe { libc::close(listening) };
                return Some(frame.to_vec());
            }
        }
        unsafe { libc::close(listening) };
        None
    })
    .unwrap()
}

/// An AF_PACKET socket on the client's veth that sees every frame arriving there (not
/// those the client sends: a flood's own SYNs would fill its buffer), whose reads give up
/// after `timeout_us` of quiet. The caller closes it; `capture_drops` tells whether its
/// buffer overflowed.
pub fn listen_on_client(lab: &Lab, timeout_us: i64) -> i32 {
    run_in(&lab.client, move || {
        let index = interface::index(CLIENT_IFACE).unwrap();
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        let socket = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
        assert!(socket >= 0, "AF_PACKET socket");
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = protocol;
        address.sll_ifindex = index as i32;
        let bound = unsafe {
            libc::bind(
                socket,
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let set = |level: i32, option: i32, value: i32| {
            let done = unsafe {
                libc::setsockopt(
                    socket,
                    level,
                    option,
                    (&value as *const i32).cast(),
                    std::mem::size_of::<i32>() as u32,
                )
            };
            assert_eq!(
                done,
                0,
                "setsockopt {option}: {}",
                std::io::Error::last_os_error()
            );
        };
        set(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1);
        set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
        let timeout = libc::timeval {
            tv_sec: timeout_us / 1_000_000,
            tv_usec: timeout_us % 1_000_000,
        };
        unsafe {
            libc::setsockopt(
                socket,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        socket
    })
    .unwrap()
}

/// The frames `listen_on_client`'s socket dropped because its buffer was full, since it
/// was opened (or last asked).
pub fn capture_drops(socket: i32) -> u32 {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as u32;
    let done = unsafe {
        libc::getsockopt(
            socket,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    assert_eq!(
        done,
        0,
        "PACKET_STATISTICS: {}",
        std::io::Error::last_os_error()
    );
    stats.tp_drops
}
