//! Raw frames from the client's namespace (AF_PACKET), as a forger would send them.

use handshake::{
    interface,
    lab::{CLIENT_IFACE, Lab, SERVER_IFACE, run_in},
};

/// Sends raw frames out of the client's veth (AF_PACKET), as a forger would.
pub fn send_frames(lab: &Lab, frames: Vec<Vec<u8>>) {
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
            frame[..6].copy_from_slice(&mac);
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
            assert_eq!(
                sent,
                frame.len() as isize,
                "sendto: {}",
                std::io::Error::last_os_error()
            );
        }
        unsafe { libc::close(socket) };
    })
    .unwrap();
}
