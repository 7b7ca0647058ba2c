//! What `handshake run` keeps current while it runs, beside the interfaces themselves
//! (run.rs `follow`): the values the program cannot read itself. The namespace's local
//! routing table (which destinations are this host's), and per interface its MAC, its
//! IPv6 hop limit and `net.core.rmem_max`. Each change is written into the running
//! programs' maps and said in one log line. (`attach` cannot follow them: `status` names
//! them as STALE.)

use crate::{
    interface,
    kernel_tcp::{self, RmemMax},
    loader::Handshake,
    local_table::LocalTable,
};

pub struct FollowedHost {
    /// The local table as last written into every program.
    table: LocalTable,
}

impl FollowedHost {
    /// The table the programs were loaded with (`Handshake::load_object` reads it).
    pub fn read() -> anyhow::Result<Self> {
        Ok(Self {
            table: LocalTable::read()?,
        })
    }

    /// Reads the host again and writes what changed into each program; a line per change.
    pub fn follow<'a>(
        &mut self,
        programs: impl IntoIterator<Item = (&'a str, &'a mut Handshake)>,
    ) -> Vec<String> {
        let mut said = Vec::new();
        let table = match LocalTable::read() {
            Ok(table) => Some(table).filter(|table| *table != self.table),
            Err(error) => {
                said.push(format!("reading the local routing table failed: {error:#}"));
                None
            }
        };
        let rmem_max = RmemMax::read().map(RmemMax::value);
        let mut written = true;
        for (iface, handshake) in programs {
            if let Some(table) = &table
                && let Err(error) = handshake.maps.local_routes.replace(table)
            {
                said.push(format!(
                    "{iface}: {error:#}; SYNs to addresses it misses go to the kernel"
                ));
                written = false;
            }
            let Ok(mut config) = handshake.maps.config() else {
                continue;
            };
            let was = config;
            if let Ok(mac) = interface::ethernet_mac(iface) {
                config.mac = mac;
            }
            if let Ok(hop_limit) = kernel_tcp::ipv6_hop_limit(iface) {
                config.hop_limit = hop_limit;
            }
            if let Ok(rmem_max) = rmem_max {
                config.rmem_max = rmem_max;
            }
            if config == was {
                continue;
            }
            for (changed, what) in [
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
            ] {
                if changed {
                    said.push(format!("{iface}: {what}; SYN-ACKs follow"));
                }
            }
            if let Err(error) = handshake.maps.set_config(&config) {
                said.push(format!("{iface}: {error:#}"));
            }
        }
        // Not written everywhere: asked again at the next call.
        if let Some(table) = table.filter(|_| written) {
            let changes = table.difference(&self.table);
            let changes = match changes.is_empty() {
                true => "its broadcast or anycast routes".to_owned(),
                false => changes.join(", "),
            };
            said.push(format!(
                "the local routing table changed ({changes}); handshake follows it"
            ));
            self.table = table;
        }
        said
    }
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|byte| format!("{byte:02x}")).join(":")
}
