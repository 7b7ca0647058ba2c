//! `handle`'s verdict, packed into the one u32 a global function can return: the XDP
//! action (bits 0..8), the counter (8..16) and the protected port's counter slot (16..32,
//! 0 for a segment to no protected port).

use handshake_common::counters::{COUNTER_COUNT, Counter};

const _: () = assert!(COUNTER_COUNT <= 256);

pub struct Verdict {
    pub action: u32,
    pub counter: u32,
    pub slot: u32,
}

impl Verdict {
    #[inline(always)]
    pub fn pack(action: u32, counter: Counter, slot: u16) -> u32 {
        action | (counter as u32) << 8 | u32::from(slot) << 16
    }

    /// A segment to no protected port, passed.
    #[inline(always)]
    pub fn passed(counter: Counter) -> u32 {
        Verdict::pack(aya_ebpf::bindings::xdp_action::XDP_PASS, counter, 0)
    }

    #[inline(always)]
    pub fn unpack(verdict: u32) -> Verdict {
        Verdict {
            action: verdict & 0xff,
            counter: (verdict >> 8) & 0xff,
            slot: verdict >> 16,
        }
    }
}
