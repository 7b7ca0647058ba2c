//! TCP constants from RFC 9293 and the kernel's `include/net/tcp.h`.

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

/// Option kinds (IANA "TCP Option Kind Numbers").
pub const OPT_EOL: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;
pub const OPT_WSCALE: u8 = 3;
pub const OPT_SACK_PERM: u8 = 4;
pub const OPT_TIMESTAMP: u8 = 8;
/// Options only the kernel can answer: TCP-MD5 (RFC 2385) and TCP-AO (RFC 5925) sign
/// segments with a key handshake does not have; MPTCP (RFC 8684) needs an MP_CAPABLE
/// answer from an MPTCP listener.
pub const OPT_MD5SIG: u8 = 19;
pub const OPT_AO: u8 = 29;
pub const OPT_MPTCP: u8 = 30;

/// The header without options, and the most options the 4-bit data offset allows.
pub const HEADER_LEN: usize = 20;
pub const MAX_OPTIONS_LEN: usize = 40;

/// RFC 7323 2.3: a shift count above 14 is treated as 14.
pub const MAX_WSCALE: u8 = 14;

/// `TCP_LISTEN` in the kernel's `include/net/tcp_states.h`, as `bpf_sock.state` reports it.
pub const STATE_LISTEN: u32 = 10;

pub const IPPROTO_TCP: u8 = 6;
