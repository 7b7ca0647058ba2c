//! Where the running kernel keeps the listener's settings and its namespace's sysctls,
//! read from its BTF for the XDP program's `KERNEL_LAYOUT` (see handshake-common's
//! `listener.rs` for what each is for).

use anyhow::{Context as _, bail};
use handshake_common::listener::{Field, KernelLayout, REPFLOW_IN_INET, REPFLOW_IN_PINFO};

use crate::btf::{Btf, Kind, Member};

/// The name of the program's read-only global the layout is written into.
pub const GLOBAL: &str = "KERNEL_LAYOUT";

/// The running kernel's layout.
pub fn read() -> anyhow::Result<KernelLayout> {
    let btf = Btf::vmlinux()?;
    layout(&btf).context(
        "this kernel's struct layout is not one handshake knows how to read (the listener's settings cannot be found); please report it with `uname -r`",
    )
}

pub fn layout(btf: &Btf) -> anyhow::Result<KernelLayout> {
    // Most members the program reads as the type they have on every kernel handshake
    // supports (`at` in handshake-ebpf's listener_settings.rs): one load, nothing to
    // decode. A kernel where one differs is refused here rather than misread there.
    let sock = |path: &str, width: u32| exact(btf.member("tcp_sock", path)?, path, width);
    let net = |path: &str, width: u32| exact(btf.member("net", path)?, path, width);
    // Those whose shape changed (bitfields on Linux 6.1) are decoded (`shaped` there).
    let shaped_sock = |path: &str| int(btf.member("tcp_sock", path)?, path);
    let pointer = |strukt: &str, path: &str| -> anyhow::Result<Field> {
        let member = btf.member(strukt, path)?;
        if member.kind != Kind::Pointer {
            bail!("{strukt}.{path} is not a pointer");
        }
        Ok(field(member))
    };
    // `sysctl_tcp_rmem` is `int[3]`; the program reads its last element.
    let rmem = btf.member("net", "ipv4.sysctl_tcp_rmem")?;
    let Kind::Array {
        element_size: 4,
        len: 3,
    } = rmem.kind
    else {
        bail!("net.ipv4.sysctl_tcp_rmem is not int[3]");
    };
    let (repflow_in, repflow) = match btf.member("ipv6_pinfo", "repflow") {
        Ok(member) => (REPFLOW_IN_PINFO, int(member, "repflow")?),
        Err(_) => {
            // Linux 6.6+: a bit of `inet_flags`, numbered by `enum { INET_FLAGS_... }`.
            let flags = btf.member("tcp_sock", "inet_conn.icsk_inet.inet_flags")?;
            if flags.kind != Kind::Int {
                bail!("inet_sock.inet_flags is not an integer");
            }
            let bit = btf
                .enumerator("INET_FLAGS_REPFLOW")
                .context("neither ipv6_pinfo.repflow nor INET_FLAGS_REPFLOW")?;
            let bit = u32::try_from(bit).context("INET_FLAGS_REPFLOW out of range")?;
            (
                REPFLOW_IN_INET,
                Field {
                    offset: flags.offset + bit / 8,
                    size: 1,
                    shift: (bit % 8) as u8,
                    bits: 1,
                    _pad: 0,
                },
            )
        }
    };
    Ok(KernelLayout {
        loaded: 1,
        repflow_in,
        sk_rcvbuf: sock("inet_conn.icsk_inet.sk.sk_rcvbuf", 4)?,
        sk_userlocks: shaped_sock("inet_conn.icsk_inet.sk.sk_userlocks")?,
        sk_net: pointer("tcp_sock", "inet_conn.icsk_inet.sk.__sk_common.skc_net.net")?,
        inet_tos: sock("inet_conn.icsk_inet.tos", 1)?,
        inet_uc_ttl: sock("inet_conn.icsk_inet.uc_ttl", 2)?,
        inet_pmtudisc: sock("inet_conn.icsk_inet.pmtudisc", 1)?,
        inet_pinet6: pointer("tcp_sock", "inet_conn.icsk_inet.pinet6")?,
        repflow,
        tp_window_clamp: sock("window_clamp", 4)?,
        tp_user_mss: sock("rx_opt.user_mss", 2)?,
        tp_scaling_ratio: match btf.member("tcp_sock", "scaling_ratio") {
            Ok(member) => exact(member, "scaling_ratio", 1)?,
            Err(_) => Field::ABSENT,
        },
        np_tclass: exact(btf.member("ipv6_pinfo", "tclass")?, "ipv6_pinfo.tclass", 1)?,
        np_hop_limit: int(btf.member("ipv6_pinfo", "hop_limit")?, "hop_limit")?,
        net_tcp_timestamps: net("ipv4.sysctl_tcp_timestamps", 1)?,
        net_tcp_sack: net("ipv4.sysctl_tcp_sack", 1)?,
        net_tcp_window_scaling: net("ipv4.sysctl_tcp_window_scaling", 1)?,
        net_tcp_ecn: net("ipv4.sysctl_tcp_ecn", 1)?,
        net_ip_default_ttl: net("ipv4.sysctl_ip_default_ttl", 1)?,
        net_tcp_rmem_max: Field {
            offset: rmem.offset + 8,
            size: 4,
            ..Field::ABSENT
        },
        net_tcp_reflect_tos: net("ipv4.sysctl_tcp_reflect_tos", 1)?,
        net_tcp_adv_win_scale: net("ipv4.sysctl_tcp_adv_win_scale", 4)?,
        net_tcp_workaround_signed_windows: net("ipv4.sysctl_tcp_workaround_signed_windows", 1)?,
    })
}

/// An integer member (or bitfield) of 1, 2 or 4 bytes: what the program's loads read.
fn int(member: Member, path: &str) -> anyhow::Result<Field> {
    if member.kind != Kind::Int || !matches!(member.size, 1 | 2 | 4) {
        bail!("{path} is not an integer of 1, 2 or 4 bytes: {member:?}");
    }
    match member.bits {
        // A bitfield is read as the smallest aligned word that holds it (Linux 6.1 keeps
        // `ipv6_pinfo.hop_limit` in 9 bits across two bytes).
        Some((shift, bits)) => {
            let first_bit = member.offset * 8 + shift;
            let size = [1u32, 2, 4]
                .into_iter()
                .find(|size| first_bit / (size * 8) == (first_bit + bits - 1) / (size * 8))
                .with_context(|| format!("{path} is a bitfield across words: {member:?}"))?;
            let offset = first_bit / (size * 8) * size;
            Ok(Field {
                offset,
                size: size as u8,
                shift: (first_bit - offset * 8) as u8,
                bits: bits as u8,
                _pad: 0,
            })
        }
        None => Ok(field(member)),
    }
}

/// An integer member of exactly `width` bytes, not a bitfield: what the program reads
/// with one load of that width.
fn exact(member: Member, path: &str, width: u32) -> anyhow::Result<Field> {
    if member.kind != Kind::Int || member.size != width || member.bits.is_some() {
        bail!(
            "{path} is not the {width}-byte integer handshake reads it as (this kernel has {member:?})"
        );
    }
    Ok(field(member))
}

fn field(member: Member) -> Field {
    Field {
        offset: member.offset,
        size: member.size as u8,
        ..Field::ABSENT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's BTF gives every member; the defaults the layout reads must
    /// sit where `struct sock` and friends have them on every kernel handshake supports.
    #[test]
    fn this_kernel_has_every_member() {
        let btf = Btf::vmlinux().unwrap();
        let layout = layout(&btf).unwrap();
        eprintln!("{layout:#?}");
        assert_eq!(layout.sk_rcvbuf.size, 4);
        assert_eq!(layout.sk_net.size, 8);
        assert_eq!(layout.tp_window_clamp.size, 4);
        assert_eq!(layout.tp_user_mss.size, 2);
        assert_eq!(layout.inet_uc_ttl.size, 2);
        assert_eq!(layout.repflow.bits, 1);
        assert!(layout.net_tcp_timestamps.offset > 0);
    }

    /// A member read at a fixed width is refused, by name, when this kernel gives it
    /// another width or makes it a bitfield: the program would misread it.
    #[test]
    fn exact_refuses_another_shape() {
        let member = |size, bits| Member {
            offset: 812,
            size,
            bits,
            kind: Kind::Int,
        };
        assert_eq!(exact(member(2, None), "uc_ttl", 2).unwrap().offset, 812);
        let wider = exact(member(4, None), "uc_ttl", 2).unwrap_err().to_string();
        assert!(
            wider.starts_with("uc_ttl is not the 2-byte integer"),
            "{wider}"
        );
        let bitfield = exact(member(2, Some((0, 9))), "hop_limit", 2).unwrap_err();
        assert!(bitfield.to_string().contains("hop_limit"), "{bitfield}");
    }
}
