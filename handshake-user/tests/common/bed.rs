//! The BPF_PROG_TEST_RUN test bed shared by the golden and property tests: the program
//! loaded (not attached) inside a lab's server namespace, with an echo server on port
//! 8080. Port 9090 is protected but has no listener; port 7070 is not protected.

use aya::programs::{TestRun as _, TestRunOptions};
use handshake::{
    counters::Snapshot,
    kernel_tcp::KernelTcp,
    lab::{CLIENT_V4, CLIENT_V6, Lab, SERVER_V4, SERVER_V6, echo::EchoServer, run_in},
    loader::Handshake,
};
use handshake_common::{
    config::Config,
    counters::{ALL, Counter},
};

use super::packet::{self, ACK, SYN, Tcp};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

pub const PROTECTED: u16 = 8080;
pub const NO_LISTENER: u16 = 9090;
pub const UNPROTECTED: u16 = 7070;
pub const CLIENT_PORT: u16 = 40000;
pub const CLIENT_SEQ: u32 = 0xfeed_f00d;

pub const CLIENT: [u8; 4] = CLIENT_V4.octets();
pub const SERVER: [u8; 4] = SERVER_V4.octets();
pub const CLIENT6: [u8; 16] = CLIENT_V6.octets();
pub const SERVER6: [u8; 16] = SERVER_V6.octets();

pub struct Bed {
    pub handshake: Handshake,
    /// What the program was configured with; `reconfigure` changes it.
    pub config: Config,
    pub wscale: u8,
}

pub struct Outcome {
    pub verdict: u32,
    pub output: Vec<u8>,
    pub counted: Snapshot,
}

impl Bed {
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut Config)) {
        change(&mut self.config);
        self.handshake.set_config(&self.config).unwrap();
    }

    /// Sets a sysctl of the bed's namespace (the thread runs in it: /proc/sys/net shows
    /// the reading thread's namespace). The program reads the namespace's TCP sysctls per
    /// SYN, so the next run sees it.
    pub fn sysctl(&self, name: &str, value: &str) {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        std::fs::write(&path, value).unwrap_or_else(|error| panic!("writing {path}: {error}"));
    }

    pub fn run(&mut self, input: &[u8]) -> Outcome {
        let before = self.handshake.counters().unwrap();
        let mut output = vec![0u8; input.len() + 64];
        let result = self
            .handshake
            .program()
            .unwrap()
            .test_run(TestRunOptions {
                data_in: Some(input),
                data_out: Some(&mut output),
                ..TestRunOptions::new()
            })
            .expect("BPF_PROG_TEST_RUN failed");
        output.truncate(result.data_size_out as usize);
        let counted = self.handshake.counters().unwrap().since(&before);
        Outcome {
            verdict: result.return_value,
            output,
            counted,
        }
    }
}

/// Exactly one counter moved, by one.
pub fn assert_counted(outcome: &Outcome, expected: Counter) {
    for (counter, name, _) in ALL {
        let want = u64::from(counter == expected);
        assert_eq!(outcome.counted.get(counter), want, "counter {name}");
    }
}

pub fn assert_passed_untouched(bed: &mut Bed, input: &[u8], expected: Counter) {
    let outcome = bed.run(input);
    assert_eq!(
        outcome.verdict, XDP_PASS,
        "verdict for a {expected:?} frame"
    );
    assert_eq!(outcome.output, input, "a passed frame must not change");
    assert_counted(&outcome, expected);
}

/// Runs `test` in a fresh lab's server namespace with the program loaded (not attached).
pub fn with_bed(
    syncookies: &'static str,
    timestamps: bool,
    test: impl FnOnce(&mut Bed) + Send + 'static,
) {
    super::require_root();
    let lab = Lab::create("golden").unwrap();
    lab.sysctl(&lab.server, "net.ipv4.tcp_syncookies", syncookies)
        .unwrap();
    // Timestamps follow the sysctl: 2 answers with them, 0 with MSS only (as the kernel
    // does then). With 1 a SYN offering them is the kernel's (a test sets that itself).
    let tcp_timestamps = if timestamps { "2" } else { "0" };
    lab.sysctl(&lab.server, "net.ipv4.tcp_timestamps", tcp_timestamps)
        .unwrap();
    let _server = EchoServer::start(&lab.server, PROTECTED).unwrap();
    let result = run_in(&lab.server, move || {
        let kernel = KernelTcp::read().unwrap();
        let mut handshake = Handshake::load().unwrap();
        let config = Config {
            mac: packet::SERVER_MAC,
            // Every ACK without a valid cookie is forged here; `stray_acks_*` sets its own.
            flood_syn_acks: 0,
            ..kernel.config(1460, 1440, timestamps).unwrap()
        };
        handshake.set_config(&config).unwrap();
        handshake.set_ports(&[PROTECTED, NO_LISTENER]).unwrap();
        test(&mut Bed {
            handshake,
            config,
            wscale: kernel.wscale,
        });
    });
    result.expect("the test failed inside the server namespace (see the panic above)");
}

pub fn syn_v4(options: &[u8]) -> Vec<u8> {
    packet::ipv4(
        CLIENT,
        SERVER,
        &[],
        &Tcp::syn(CLIENT_PORT, PROTECTED, CLIENT_SEQ, options),
    )
}

/// The SYN-ACK we expect for a SYN from the client: everything but the cookie is known.
pub fn syn_ack_v4(cookie: u32, window: u16, options: &[u8]) -> Vec<u8> {
    let tcp = Tcp {
        source_port: PROTECTED,
        dest_port: CLIENT_PORT,
        seq: cookie,
        ack: CLIENT_SEQ.wrapping_add(1),
        flags: SYN | ACK,
        window,
        options,
        payload: &[],
    };
    packet::ipv4(SERVER, CLIENT, &[], &tcp)
}

pub fn cookie_of(frame: &[u8], tcp_offset: usize) -> u32 {
    u32::from_be_bytes(frame[tcp_offset + 4..tcp_offset + 8].try_into().unwrap())
}

/// The client's third packet for `cookie`, checked the way the kernel will check it.
pub fn third_ack_v4(cookie: u32) -> Vec<u8> {
    let tcp = Tcp {
        source_port: CLIENT_PORT,
        dest_port: PROTECTED,
        seq: CLIENT_SEQ.wrapping_add(1),
        ack: cookie.wrapping_add(1),
        flags: ACK,
        window: 502,
        options: &[],
        payload: &[],
    };
    packet::ipv4(CLIENT, SERVER, &[], &tcp)
}

pub const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];
