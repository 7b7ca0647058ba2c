//! `handshake limit set|show|off --iface IF`: the SYN rate limits of an attached
//! interface, live (one write of its CONFIG: no re-attach, the counters stay). Takes the
//! namespace folder's lock, as `allow`, `deny` and `dry-run` do.

use anyhow::bail;

use crate::{
    pins::PinRoot,
    rate_limits::{self, Change, FLAGS, Limits},
    state,
};

/// What to do to the limits.
pub enum LimitChange {
    /// Per flag, in `rate_limits::FLAGS` order: a rate, `off`, or unchanged.
    Set([Change; 4]),
    Show,
    Off,
}

pub fn change(root: &PinRoot, iface: &str, change: LimitChange) -> anyhow::Result<String> {
    let _lock = root.lock()?;
    let mut pinned = state::protected(root, iface)?;
    let now = rate_limits::read(&pinned.maps)?;
    let limits = match change {
        LimitChange::Show => return Ok(format!("{iface}: rate limits {}", now.describe())),
        LimitChange::Off => Limits::default(),
        LimitChange::Set(changes) => {
            if changes.iter().all(Option::is_none) {
                bail!(
                    "no limit given; give one or more of {} with RATE[/BURST] or `off` (e.g. {})",
                    FLAGS.join(", "),
                    root.command(&format!("limit set --iface {iface} --syn-per-source 20/40"))
                );
            }
            now.changed(changes)
        }
    };
    rate_limits::write(&mut pinned.maps, &limits)?;
    Ok(format!("{iface}: rate limits {}", limits.describe()))
}
