//! What `handshake run` keeps current while it runs, beside the interfaces themselves
//! (run.rs `follow`): the values the program cannot read itself. The namespace's local
//! routing table as each interface sees it (which destinations are this host's), and per
//! interface its MAC, its IPv6 hop limit and `net.core.rmem_max`. Each change is written
//! into the running program's maps and said in one log line. (`attach` cannot follow
//! them: `status` and `stats` name them as STALE.)

use crate::{
    interface,
    kernel_tcp::{self, RmemMax},
    loader::Handshake,
    local_table::HostRoutes,
};

/// What the host holds now, read off `run`'s event loop (it runs `ip` and may join PID
/// 1's network namespace for `net.core.rmem_max`), for `follow`.
pub struct HostNow {
    /// The XDP program of every interface that has one (`run` follows its own).
    pub xdp: Vec<interface::XdpProgram>,
    routes: anyhow::Result<HostRoutes>,
    rmem_max: anyhow::Result<u32>,
    /// Per interface: its MAC and IPv6 hop limit, where readable.
    interfaces: Vec<(String, Option<[u8; 6]>, Option<u8>)>,
}

impl HostNow {
    pub fn read(interfaces: Vec<String>) -> Self {
        Self {
            xdp: interface::xdp_programs(),
            routes: HostRoutes::read(),
            rmem_max: RmemMax::read().map(RmemMax::value),
            interfaces: interfaces
                .into_iter()
                .map(|iface| {
                    let mac = interface::ethernet_mac(&iface).ok();
                    let hop_limit = kernel_tcp::ipv6_hop_limit(&iface).ok();
                    (iface, mac, hop_limit)
                })
                .collect(),
        }
    }
}

/// Writes what changed since into each program; a line per change.
pub fn follow<'a>(
    now: &HostNow,
    programs: impl IntoIterator<Item = (&'a str, &'a mut Handshake)>,
) -> Vec<String> {
    let mut said = Vec::new();
    let routes = match &now.routes {
        Ok(routes) => Some(routes),
        Err(error) => {
            said.push(format!("reading the local routing table failed: {error:#}"));
            None
        }
    };
    for (iface, handshake) in programs {
        if let Some(routes) = routes {
            let now = routes.seen_from(Some(iface));
            let local_routes = &mut handshake.maps.local_routes;
            match local_routes.table() {
                Ok(was) if was == now => {}
                Ok(was) => match local_routes.replace(&now) {
                    Ok(()) => said.push(format!(
                        "{iface}: the local routing table changed ({}); handshake follows it",
                        changes(&now, &was)
                    )),
                    Err(error) => said.push(format!(
                        "{iface}: {error:#}; SYNs to local addresses it misses go to the kernel"
                    )),
                },
                Err(error) => said.push(format!("{iface}: {error:#}")),
            }
        }
        let Ok(mut config) = handshake.maps.config() else {
            continue;
        };
        let was = config;
        if let Some((_, mac, hop_limit)) = now.interfaces.iter().find(|(name, ..)| name == iface) {
            config.mac = mac.unwrap_or(config.mac);
            config.hop_limit = hop_limit.unwrap_or(config.hop_limit);
        }
        if let Ok(rmem_max) = now.rmem_max {
            config.rmem_max = rmem_max;
        }
        if config == was {
            continue;
        }
        let changed = [
            (
                config.mac != was.mac,
                format!("MAC {} -> {}", mac_text(was.mac), mac_text(config.mac)),
            ),
            (
                config.hop_limit != was.hop_limit,
                format!("IPv6 hop_limit {} -> {}", was.hop_limit, config.hop_limit),
            ),
            (
                config.rmem_max != was.rmem_max,
                format!("net.core.rmem_max {} -> {}", was.rmem_max, config.rmem_max),
            ),
        ];
        match handshake.maps.set_config(&config) {
            Ok(()) => said.extend(
                changed
                    .into_iter()
                    .filter(|(changed, _)| *changed)
                    .map(|(_, what)| format!("{iface}: {what}; SYN-ACKs follow")),
            ),
            Err(error) => said.push(format!("{iface}: {error:#}")),
        }
    }
    said
}

/// The local routes added and removed, or what else changed.
fn changes(now: &crate::local_table::LocalTable, was: &crate::local_table::LocalTable) -> String {
    let changes = now.difference(was);
    if changes.is_empty() {
        return "its broadcast or anycast routes".to_owned();
    }
    changes.join(", ")
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}
