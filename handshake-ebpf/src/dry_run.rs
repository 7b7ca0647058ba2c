//! Dry run (`Config::dry_run`): how an operator tries handshake on a live server. Every
//! verdict is decided and counted as in enforcing mode, and every packet passes.
//!
//! A SYN that would be answered is not rewritten (`syn.rs` stops before the rewrite), but
//! its cookie is still asked for: `bpf_tcp_gen_syncookie` is what tells an answered SYN
//! (`syn_ack_sent`) from one the kernel is not issuing cookies for (`syn_passed_no_cookie`,
//! `tcp_syncookies=1` with room in the SYN queue). Its side effect, `tcp_synq_overflow` on
//! the listener, happens only when it returns a cookie, that is when the kernel itself
//! sends a cookie for that SYN (it passes, and `tcp_conn_request` marks the listener the
//! same way): it changes nothing the kernel would not.

use aya_ebpf::bindings::xdp_action;
use handshake_common::config::Config;

/// The action to take for `action`: XDP_PASS in dry run.
#[inline(always)]
pub fn enforce(action: u32, config: &Config) -> u32 {
    if config.dry_run != 0 {
        return xdp_action::XDP_PASS;
    }
    action
}
