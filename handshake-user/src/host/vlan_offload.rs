//! Refusing an interface that strips VLAN tags before XDP while VLAN sub-interfaces sit on
//! it. With rx VLAN offload (most NICs, and veth) the driver moves the 802.1Q tag into the
//! packet's metadata (`__vlan_hwaccel_put_tag`) before XDP runs: the program sees an
//! untagged frame and answers it untagged, on the native VLAN, where the client never
//! hears it; the kernel itself would have answered through the VLAN device. With the
//! offload off, tags stay in the frame and the program answers with them (up to two).

use anyhow::bail;

use crate::interface;

/// The 802.1Q (C-tag) and 802.1ad (S-tag) flavours a VLAN device is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Customer,
    Service,
}

impl Tag {
    /// The netdev feature that strips this tag on receive (net/ethtool/common.c's
    /// netdev_features_strings), the name `ethtool -k` shows it by, and the `ethtool -K`
    /// words that turn it off.
    fn feature(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Tag::Customer => ("rx-vlan-hw-parse", "rx-vlan-offload", "rxvlan off"),
            Tag::Service => (
                "rx-vlan-stag-hw-parse",
                "rx-vlan-stag-hw-parse",
                "rx-vlan-stag-hw-parse off",
            ),
        }
    }
}

/// A VLAN device whose lower device is the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanUpper {
    pub name: String,
    pub tag: Tag,
}

/// Which tags the interface strips before XDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxVlanOffload {
    pub customer: bool,
    pub service: bool,
}

impl RxVlanOffload {
    fn strips(self, tag: Tag) -> bool {
        match tag {
            Tag::Customer => self.customer,
            Tag::Service => self.service,
        }
    }
}

/// Refuses `iface` when a VLAN device sits on it whose tags it strips before XDP.
pub fn refuse_stripped_tags(iface: &str) -> anyhow::Result<()> {
    let uppers = vlan_uppers(iface);
    if uppers.is_empty() {
        return Ok(());
    }
    refuse(iface, rx_vlan_offload(iface)?, &uppers)
}

/// The decision, on what was read: the error names the VLAN devices and the fix.
pub fn refuse(iface: &str, offload: RxVlanOffload, uppers: &[VlanUpper]) -> anyhow::Result<()> {
    let stripped: Vec<&VlanUpper> = uppers
        .iter()
        .filter(|upper| offload.strips(upper.tag))
        .collect();
    if stripped.is_empty() {
        return Ok(());
    }
    let mut features: Vec<(&str, &str, &str)> = stripped.iter().map(|u| u.tag.feature()).collect();
    features.sort_unstable();
    features.dedup();
    let names: Vec<&str> = stripped.iter().map(|upper| upper.name.as_str()).collect();
    let on: Vec<String> = features
        .iter()
        .map(|(_, shown, _)| format!("{shown}: on"))
        .collect();
    let off: Vec<&str> = features.iter().map(|(_, _, off)| *off).collect();
    bail!(
        "{iface} strips VLAN tags before XDP ({}) and has VLAN devices {}: their SYNs would reach handshake untagged and be answered untagged, on the native VLAN; run `ethtool -K {iface} {}`, then attach again",
        on.join(", "),
        names.join(", "),
        off.join(" ")
    )
}

/// The VLAN devices of this thread's namespace whose lower device is `iface` (`ip -details
/// -json link`: iproute2 reads IFLA_LINK and IFLA_VLAN_PROTOCOL over netlink; sysfs would
/// show the namespace it was mounted in).
fn vlan_uppers(iface: &str) -> Vec<VlanUpper> {
    crate::interface::links(&[])
        .iter()
        .filter(|link| link["linkinfo"]["info_kind"] == "vlan" && link["link"] == iface)
        .filter_map(|link| {
            let tag = match link["linkinfo"]["info_data"]["protocol"].as_str() {
                Some("802.1ad") => Tag::Service,
                _ => Tag::Customer,
            };
            let name = link["ifname"].as_str()?.to_owned();
            Some(VlanUpper { name, tag })
        })
        .collect()
}

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// struct ethtool_sset_info asking for one string set's length.
#[repr(C)]
struct SsetInfo {
    cmd: u32,
    reserved: u32,
    sset_mask: u64,
    length: u32,
}

/// The interface's active rx VLAN offloads: ETHTOOL_GFEATURES, its bits found by name
/// (ETHTOOL_GSTRINGS of ETH_SS_FEATURES), as `ethtool -k` reads them.
pub fn rx_vlan_offload(iface: &str) -> anyhow::Result<RxVlanOffload> {
    let what = "features (ethtool -k)";
    let mut info = SsetInfo {
        cmd: ETHTOOL_GSSET_INFO,
        reserved: 0,
        sset_mask: 1 << ETH_SS_FEATURES,
        length: 0,
    };
    interface::ethtool(iface, (&raw mut info).cast(), what)?;
    let count = info.length as usize;
    // struct ethtool_gstrings: cmd, string_set, len, then count names of 32 bytes.
    let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    strings[..3].copy_from_slice(&[ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count as u32]);
    interface::ethtool(iface, strings.as_mut_ptr().cast(), what)?;
    let names: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let bit = |wanted: &str| {
        names
            .chunks(ETH_GSTRING_LEN)
            .position(|name| name.split(|&b| b == 0).next() == Some(wanted.as_bytes()))
    };
    // struct ethtool_gfeatures: cmd, size, then blocks of available, requested, active,
    // never_changed, 32 features each.
    let blocks = count.div_ceil(32);
    let mut features = vec![0u32; 2 + 4 * blocks];
    features[..2].copy_from_slice(&[ETHTOOL_GFEATURES, blocks as u32]);
    interface::ethtool(iface, features.as_mut_ptr().cast(), what)?;
    let active = |tag: Tag| {
        bit(tag.feature().0)
            .is_some_and(|bit| features[2 + 4 * (bit / 32) + 2] >> (bit % 32) & 1 == 1)
    };
    Ok(RxVlanOffload {
        customer: active(Tag::Customer),
        service: active(Tag::Service),
    })
}

#[cfg(test)]
mod tests {
    use super::{RxVlanOffload, Tag, VlanUpper, refuse};

    fn upper(name: &str, tag: Tag) -> VlanUpper {
        VlanUpper {
            name: name.to_owned(),
            tag,
        }
    }

    #[test]
    fn refused_only_where_a_stripped_tag_has_a_vlan_device() {
        let both = RxVlanOffload {
            customer: true,
            service: true,
        };
        let none = RxVlanOffload {
            customer: false,
            service: false,
        };
        let q = [
            upper("eth0.10", Tag::Customer),
            upper("eth0.20", Tag::Customer),
        ];
        let error = |offload, uppers: &[VlanUpper]| {
            refuse("eth0", offload, uppers).unwrap_err().to_string()
        };
        assert_eq!(
            error(both, &q),
            "eth0 strips VLAN tags before XDP (rx-vlan-offload: on) and has VLAN devices eth0.10, eth0.20: their SYNs would reach handshake untagged and be answered untagged, on the native VLAN; run `ethtool -K eth0 rxvlan off`, then attach again"
        );
        let qinq = [
            upper("eth0.10", Tag::Customer),
            upper("eth0.100", Tag::Service),
        ];
        assert_eq!(
            error(both, &qinq),
            "eth0 strips VLAN tags before XDP (rx-vlan-offload: on, rx-vlan-stag-hw-parse: on) and has VLAN devices eth0.10, eth0.100: their SYNs would reach handshake untagged and be answered untagged, on the native VLAN; run `ethtool -K eth0 rxvlan off rx-vlan-stag-hw-parse off`, then attach again"
        );
        let stag_only = RxVlanOffload {
            customer: false,
            service: true,
        };
        assert_eq!(
            error(stag_only, &qinq),
            "eth0 strips VLAN tags before XDP (rx-vlan-stag-hw-parse: on) and has VLAN devices eth0.100: their SYNs would reach handshake untagged and be answered untagged, on the native VLAN; run `ethtool -K eth0 rx-vlan-stag-hw-parse off`, then attach again"
        );
        refuse("eth0", none, &qinq).unwrap();
        refuse("eth0", both, &[]).unwrap();
        refuse("eth0", stag_only, &q).unwrap();
    }
}
