//! The program's maps as the loader sees them, whether just loaded or reopened from their
//! pins under the BPF filesystem by a later `handshake` process.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::{Array, LpmTrie, Map, MapData, PerCpuArray, RingBuf},
};
use handshake_common::{
    config::{CONFIG_KEY, Config},
    counters::{ALL, COUNTER_COUNT},
};

use crate::{
    counters::Snapshot,
    local_routes::LocalRoutes,
    port_table::PortTable,
    prefix_tries::PrefixTries,
    source_lists::{SourceLists, Tries},
};

/// Map names in the object (handshake-ebpf/src/maps.rs), also their pin file names.
pub const CONFIG: &str = "CONFIG";
pub const PORTS: &str = "PORTS";
const SLOT_PORTS: &str = "SLOT_PORTS";
pub const PORT_COUNTERS: &str = "PORT_COUNTERS";
const COUNTERS: &str = "COUNTERS";
pub const ALLOW_V4: &str = "ALLOW_V4";
pub const ALLOW_V6: &str = "ALLOW_V6";
pub const DENY_V4: &str = "DENY_V4";
pub const DENY_V6: &str = "DENY_V6";
const LOCAL_V4: &str = "LOCAL_V4";
const LOCAL_V6: &str = "LOCAL_V6";
const LOCAL_HOSTS: &str = "LOCAL_HOSTS";
pub const SAMPLES: &str = "SAMPLES";
pub const NAMES: [&str; 13] = [
    CONFIG,
    PORTS,
    SLOT_PORTS,
    PORT_COUNTERS,
    COUNTERS,
    ALLOW_V4,
    ALLOW_V6,
    DENY_V4,
    DENY_V6,
    LOCAL_V4,
    LOCAL_V6,
    LOCAL_HOSTS,
    SAMPLES,
];

pub struct Maps {
    config: Array<MapData, Config>,
    pub ports: PortTable,
    counters: PerCpuArray<MapData, u64>,
    pub sources: SourceLists,
    pub local_routes: LocalRoutes,
    /// The ring buffer of packet samples, until `take_samples` takes it (`capture.rs`).
    samples: Option<Map>,
}

impl Maps {
    /// Takes the maps out of a freshly loaded object, pinning each where `pin_at` says
    /// first (nowhere for `None`).
    pub fn take(ebpf: &mut Ebpf, pin_at: impl Fn(&str) -> Option<PathBuf>) -> anyhow::Result<Self> {
        let mut take = |name: &str| -> anyhow::Result<Map> {
            let map = ebpf
                .take_map(name)
                .ok_or_else(|| anyhow!("the XDP object has no map {name}"))?;
            if let Some(path) = pin_at(name) {
                map.pin(&path)
                    .with_context(|| format!("pinning map {name} at {} failed", path.display()))?;
            }
            Ok(map)
        };
        let samples = take(SAMPLES)?;
        Self::from_maps(
            NAMES
                .into_iter()
                .filter(|name| *name != SAMPLES)
                .map(&mut take)
                .collect::<anyhow::Result<Vec<_>>>()?,
            Some(samples),
        )
    }

    /// Reopens the maps an earlier `handshake attach` pinned in `dir`.
    pub fn from_pins(dir: &Path) -> anyhow::Result<Self> {
        let open = |name: &str| -> anyhow::Result<Map> {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("opening the pinned map {} failed", path.display()))?;
            Ok(Map::from_map_data(data)?)
        };
        Self::from_maps(
            NAMES
                .into_iter()
                .filter(|name| *name != SAMPLES)
                .map(open)
                .collect::<anyhow::Result<Vec<_>>>()?,
            // The pins of a build from before samples have none: they still open, so that
            // `attach` upgrades them in place.
            open(SAMPLES).ok(),
        )
    }

    /// The maps in `NAMES` order, but `SAMPLES`.
    fn from_maps(maps: Vec<Map>, samples: Option<Map>) -> anyhow::Result<Self> {
        let [
            config,
            ports,
            slot_ports,
            port_counters,
            counters,
            allow_v4,
            allow_v6,
            deny_v4,
            deny_v6,
            local_v4,
            local_v6,
            local_hosts,
        ]: [Map; 12] = maps.try_into().map_err(|_| {
            anyhow!(
                "expected the {} maps {NAMES:?} but {SAMPLES}",
                NAMES.len() - 1
            )
        })?;
        Ok(Self {
            config: Array::try_from(config)?,
            ports: PortTable::new(
                Array::try_from(ports)?,
                Array::try_from(slot_ports)?,
                PerCpuArray::try_from(port_counters)?,
            ),
            counters: PerCpuArray::try_from(counters)?,
            sources: SourceLists {
                allow: Tries {
                    v4: LpmTrie::try_from(allow_v4)?,
                    v6: LpmTrie::try_from(allow_v6)?,
                },
                deny: Tries {
                    v4: LpmTrie::try_from(deny_v4)?,
                    v6: LpmTrie::try_from(deny_v6)?,
                },
            },
            local_routes: LocalRoutes {
                tries: PrefixTries {
                    v4: LpmTrie::try_from(local_v4)?,
                    v6: LpmTrie::try_from(local_v6)?,
                },
                hosts: Array::try_from(local_hosts)?,
            },
            samples,
        })
    }

    pub fn config(&self) -> anyhow::Result<Config> {
        self.config
            .get(&CONFIG_KEY, 0)
            .context("reading the CONFIG map failed")
    }

    pub fn set_config(&mut self, config: &Config) -> anyhow::Result<()> {
        self.config
            .set(CONFIG_KEY, config, 0)
            .context("writing the CONFIG map failed")
    }

    /// The ring buffer the program writes packet samples into, for its one reader.
    pub fn take_samples(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self.samples.take().ok_or_else(|| {
            anyhow!(
                "no {SAMPLES} ring buffer: it was attached by a build of handshake without packet samples; attach this build to sample"
            )
        })?;
        RingBuf::try_from(map).context("opening the SAMPLES ring buffer failed")
    }

    /// The counters summed over every CPU, and for the per-port verdicts over every port
    /// slot too (the program counts those in the slots only).
    pub fn counters(&self) -> anyhow::Result<Snapshot> {
        let ports = self.ports.totals()?;
        let mut totals = [0u64; COUNTER_COUNT as usize];
        for ((counter, _, _), total) in ALL.iter().zip(totals.iter_mut()) {
            let per_cpu = self
                .counters
                .get(&(*counter as u32), 0)
                .context("reading the COUNTERS map failed")?;
            *total = per_cpu.iter().sum::<u64>() + ports.get(*counter);
        }
        Ok(Snapshot(totals))
    }
}
