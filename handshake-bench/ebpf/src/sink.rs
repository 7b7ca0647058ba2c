//! `flood_sink`, on the generator's veth: counts the SYN-ACKs that come back to spoofed
//! addresses and drops them (nothing in the generator's namespace owns those addresses;
//! dropping here spares its kernel the work). Everything else (ARP, the lab's own
//! traffic) passes.

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use handshake_common::{flood::is_spoofed, tcp};

use crate::program::ptr_at;

/// [0] SYN-ACKs to spoofed addresses, [1] RSTs to spoofed addresses.
#[map(name = "RETURNED")]
static RETURNED: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// Ethernet, an IPv4 header without options, and the TCP header up to its flags.
const PREFIX_LEN: usize = 14 + 20 + 14;

#[xdp]
pub fn flood_sink(ctx: XdpContext) -> u32 {
    let Some(frame) = ptr_at::<[u8; PREFIX_LEN]>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    let frame = unsafe { &*frame };
    // Answers to our SYNs carry no IPv4 options: the kernel and handshake send none.
    if frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 || frame[23] != tcp::IPPROTO_TCP {
        return xdp_action::XDP_PASS;
    }
    let dst = u32::from_be_bytes([frame[30], frame[31], frame[32], frame[33]]);
    if !is_spoofed(dst) {
        return xdp_action::XDP_PASS;
    }
    let flags = frame[47] & (tcp::SYN | tcp::ACK | tcp::RST);
    let slot = if flags == tcp::SYN | tcp::ACK {
        Some(0)
    } else if flags & tcp::RST != 0 {
        Some(1)
    } else {
        None
    };
    if let Some(slot) = slot
        && let Some(count) = RETURNED.get_ptr_mut(slot)
    {
        unsafe { *count += 1 };
    }
    xdp_action::XDP_DROP
}
