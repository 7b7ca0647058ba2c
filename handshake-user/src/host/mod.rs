//! What is read from the host: the interface (`interface.rs`), the namespace's TCP
//! sysctls (`kernel_tcp.rs`), its local routing table (`local_table.rs`), the MSS an MTU
//! gives (`mss.rs`), the privileges (`privileges.rs`), the network namespaces alive
//! (`namespaces.rs`); and what the host around an interface does to packets before or
//! after the XDP program, checked at attach: a port or an interface where handshake's
//! answer would not be the kernel's is refused, with the fix.
//!
//! - `nat_rules.rs`: which TCP ports netfilter's NAT prerouting rules rewrite (nft's JSON);
//! - `nat.rs`: refusing those ports (reads the ruleset, or says why it could not);
//! - `vlan_offload.rs`: refusing an interface that strips the tags of its VLAN devices;
//! - `route_metrics.rs`: refusing an interface whose routes' metrics change the SYN-ACK.

pub mod interface;
pub mod kernel_tcp;
pub mod local_table;
pub mod mss;
pub mod namespaces;
pub mod nat;
pub mod nat_rules;
pub mod privileges;
pub mod route_metrics;
pub mod vlan_offload;
