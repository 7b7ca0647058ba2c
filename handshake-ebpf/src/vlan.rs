//! Tagged frames take the untagged path: the tags are lifted out before the frame is
//! handled and put back, exactly as they were, before it is passed or sent.
//!
//! Why not a copy of the handling per tag count, with every offset constant: the
//! verifier walks each copy on its own, about 300k instructions each, and three copies
//! came within reach of its one-million limit. One copy, and for a tagged frame two
//! `bpf_xdp_adjust_head` calls and a 12-byte move (tagged frames are rare at XDP: most
//! NICs strip the tag before it; `attach` refuses such an interface with VLAN uppers).

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_head, programs::XdpContext};

use crate::{
    calls::{self, Call},
    headers::{VLAN_TAG_LEN, ptr_at},
};

/// Where the first tag starts: after the two MAC addresses.
const TAGS_OFFSET: usize = 12;

/// The tags of a frame with one or two, as they were.
pub struct Tags {
    count: usize,
    /// Both tags' TPID and TCI, as read (the second half unused with one tag).
    bytes: u64,
}

/// Lifts the `count` (1 or 2) tags out: the MACs move over them and the frame's start
/// moves past the old MAC position. `None` if the frame is too short (not possible after
/// `headers::link` counted the tags) or the kernel refused to move its start.
#[inline(always)]
pub fn lift(ctx: &XdpContext, count: usize) -> Option<Tags> {
    // Only the tags themselves: a one-tag frame may end right after its EtherType.
    let bytes = if count == 2 {
        unsafe { *ptr_at::<u64>(ctx, TAGS_OFFSET)? }
    } else {
        u64::from(unsafe { *ptr_at::<u32>(ctx, TAGS_OFFSET)? })
    };
    let len = count * VLAN_TAG_LEN;
    move_macs(ctx, 0, len)?;
    calls::count(Call::Helper, 1);
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, len as i32) } != 0 {
        // Put the MACs back where they were: the frame is passed as it came.
        move_macs(ctx, len, 0)?;
        return None;
    }
    Some(Tags { count, bytes })
}

/// Puts the tags back in front of whatever the handling left (the frame as it came, or
/// the SYN-ACK with its MACs swapped). Also before a drop: a frame not sent stays as it
/// came, whatever looks at it after XDP (the property tests do). `false` if they could
/// not be put back: the room was the frame's own a moment ago, so this only fails if the
/// kernel breaks its word, and a frame without its tags must not go on (XDP_ABORTED).
#[inline(always)]
pub fn restore(ctx: &XdpContext, tags: &Tags) -> bool {
    let len = tags.count * VLAN_TAG_LEN;
    calls::count(Call::Helper, 1);
    let moved = unsafe { bpf_xdp_adjust_head(ctx.ctx, -(len as i32)) } == 0;
    moved && move_macs(ctx, len, 0).is_some() && write_tags(ctx, tags).is_some()
}

/// Moves the 12 bytes of MAC addresses from `from` to `to` (offsets 0 and 4 or 8): read
/// whole before written, so the overlap does not matter.
#[inline(always)]
fn move_macs(ctx: &XdpContext, from: usize, to: usize) -> Option<()> {
    let (first, last) = unsafe { (*ptr_at::<u64>(ctx, from)?, *ptr_at::<u32>(ctx, from + 8)?) };
    unsafe {
        *ptr_at::<u64>(ctx, to)? = first;
        *ptr_at::<u32>(ctx, to + 8)? = last;
    }
    Some(())
}

#[inline(always)]
fn write_tags(ctx: &XdpContext, tags: &Tags) -> Option<()> {
    if tags.count == 2 {
        unsafe { *ptr_at::<u64>(ctx, TAGS_OFFSET)? = tags.bytes };
    } else {
        unsafe { *ptr_at::<u32>(ctx, TAGS_OFFSET)? = tags.bytes as u32 };
    }
    Some(())
}
