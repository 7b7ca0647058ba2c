//! A real TCP service and real clients for the lab: the server greets, then echoes what it
//! reads; the client waits for the greeting, sends a line and expects it back.
//!
//! The greeting makes handshake's counters exact: the client's first data segment leaves
//! only after the server accepted, so it reaches XDP when the connection's socket already
//! exists. Sent at once after the handshake's ACK, it could reach XDP in the same batch as
//! that ACK (veth runs XDP over a batch before the stack sees any of it), still find only
//! the listener, and be counted as a second validated cookie ACK.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail};

use super::netns::spawn_in;

/// An echo server listening on [::]:port (IPv4 and IPv6) inside a namespace.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EchoServer {
    pub fn start(ns: &str, port: u16) -> anyhow::Result<Self> {
        Self::start_with(ns, port, |_| Ok(()), |_| {})
    }

    /// The same, with `configure` setting the listener's socket options once it listens
    /// (a test's SO_RCVBUF, TCP_MAXSEG, IP_TOS, ...) and `accepted` seeing each accepted
    /// connection first (a test reads its TCP_INFO).
    pub fn start_with(
        ns: &str,
        port: u16,
        configure: impl FnOnce(&TcpListener) -> std::io::Result<()> + Send + 'static,
        accepted: impl Fn(&TcpStream) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stopping = stop.clone();
        let thread = spawn_in(ns, move || {
            let listener = match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
                Ok(listener) => listener,
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            listener
                .set_nonblocking(true)
                .expect("nonblocking listener");
            if let Err(error) = configure(&listener) {
                let _ = ready_tx.send(Err(error));
                return;
            }
            let _ = ready_tx.send(Ok(()));
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        accepted(&stream);
                        thread::spawn(move || echo(stream));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        })?;
        ready_rx
            .recv()?
            .with_context(|| format!("starting the echo server on port {port} failed"))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

/// What the server sends first on every connection.
pub const GREETING: &[u8] = b"+";

fn echo(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream.write_all(GREETING).is_err() {
        return;
    }
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 || stream.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects to `server` from the calling thread's namespace, sends `message` and checks it
/// comes back unchanged.
pub fn exchange(server: SocketAddr, message: &[u8]) -> anyhow::Result<()> {
    let mut stream = connect(server)?;
    stream.write_all(message)?;
    let mut reply = vec![0u8; message.len()];
    stream
        .read_exact(&mut reply)
        .with_context(|| format!("reading the echo from {server} failed"))?;
    if reply != message {
        bail!("{server} echoed {reply:?} for {message:?}");
    }
    Ok(())
}

/// Connects to the echo server at `server` and waits for its greeting.
pub fn connect(server: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(3))
        .with_context(|| format!("connecting to {server} failed"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut greeting = [0u8; GREETING.len()];
    stream
        .read_exact(&mut greeting)
        .with_context(|| format!("reading the greeting of {server} failed"))?;
    if greeting != GREETING {
        bail!("{server} greeted with {greeting:?}, not {GREETING:?}");
    }
    Ok(stream)
}

/// Makes `count` connections to `port` over IPv4 and then IPv6 from the calling thread's
/// namespace, each exchanging a line, and stops at the first failure.
pub fn exchange_both_families(port: u16, count: u32) -> anyhow::Result<()> {
    for v6 in [false, true] {
        let server = SocketAddr::new(super::Lab::server_addr(v6), port);
        for n in 0..count {
            exchange(server, format!("hello {n} through handshake").as_bytes())?;
        }
    }
    Ok(())
}
