//! The protected ports of one attachment: `PORTS` maps each port to a counter slot,
//! `SLOT_PORTS` maps each slot back to its port, and `PORT_COUNTERS` holds the slot's
//! per-CPU counters and flood windows. Changing it while the program runs is safe: a port
//! becomes protected or not with one atomic update of its `PORTS` entry, seen by the next
//! packet.
//!
//! The per-port verdicts (`PortCounters`) are counted in the slots only, so their totals
//! are summed over every slot. A slot given to a new port first hands what it counted to
//! slot 0, which the program never writes: the totals never go back, and no port inherits
//! another's counts.

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues};
use handshake_common::{
    config::MAX_PORTS,
    counters::{PortCounters, PortSlot},
};

pub struct PortTable {
    slots: Array<MapData, u16>,
    slot_ports: Array<MapData, u16>,
    counters: PerCpuArray<MapData, PortSlot>,
}

impl PortTable {
    pub fn new(
        slots: Array<MapData, u16>,
        slot_ports: Array<MapData, u16>,
        counters: PerCpuArray<MapData, PortSlot>,
    ) -> Self {
        Self {
            slots,
            slot_ports,
            counters,
        }
    }

    /// Every protected port and its slot, in port order.
    pub fn list(&self) -> anyhow::Result<BTreeMap<u16, u16>> {
        let mut ports = BTreeMap::new();
        for slot in 1..=MAX_PORTS {
            let port = self
                .slot_ports
                .get(&slot, 0)
                .context("reading the SLOT_PORTS map failed")?;
            if port != 0 {
                ports.insert(port, slot as u16);
            }
        }
        Ok(ports)
    }

    /// Protects `ports` in addition to those already protected; a port already there is
    /// left as it is (its counters go on).
    pub fn add(&mut self, ports: &[u16]) -> anyhow::Result<()> {
        let current = self.list()?;
        let new: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|port| !current.contains_key(port))
            .collect();
        if current.len() + new.len() > MAX_PORTS as usize {
            bail!(
                "adding {} ports to the {} protected would make {}, over the limit of {MAX_PORTS} per interface; remove some first",
                new.len(),
                current.len(),
                current.len() + new.len()
            );
        }
        let cpus = aya::util::nr_cpus().map_err(|(_, error)| error)?;
        let mut free =
            (1..=MAX_PORTS as u16).filter(|slot| !current.values().any(|used| used == slot));
        for port in new {
            let slot = free.next().expect("counted above");
            // A reused slot starts from zero (its counts kept in slot 0), before the port
            // points at it. No packet counts in it now: no port points at it.
            self.retire(slot, cpus)?;
            self.slot_ports
                .set(u32::from(slot), port, 0)
                .context("writing the SLOT_PORTS map failed")?;
            self.slots
                .set(u32::from(port), slot, 0)
                .context("writing the PORTS map failed")?;
        }
        Ok(())
    }

    /// Stops protecting `ports`; SYNs to them go to the kernel from the next packet on.
    pub fn remove(&mut self, ports: &[u16]) -> anyhow::Result<()> {
        let current = self.list()?;
        if let Some(port) = ports.iter().find(|port| !current.contains_key(port)) {
            bail!(
                "port {port} is not protected here; `handshake ports list` shows the protected ports"
            );
        }
        for port in ports {
            self.slots
                .set(u32::from(*port), 0, 0)
                .context("writing the PORTS map failed")?;
            self.slot_ports
                .set(u32::from(current[port]), 0, 0)
                .context("writing the SLOT_PORTS map failed")?;
        }
        Ok(())
    }

    /// Makes `ports` exactly the protected set.
    pub fn replace(&mut self, ports: &[u16]) -> anyhow::Result<()> {
        let stale: Vec<u16> = self
            .list()?
            .into_keys()
            .filter(|port| !ports.contains(port))
            .collect();
        if !stale.is_empty() {
            self.remove(&stale)?;
        }
        self.add(ports)
    }

    /// Adds what `slot` counted to slot 0's, per CPU, and empties it.
    fn retire(&mut self, slot: u16, cpus: usize) -> anyhow::Result<()> {
        let reading = "reading PORT_COUNTERS failed";
        let counted = self.counters.get(&u32::from(slot), 0).context(reading)?;
        if counted
            .iter()
            .any(|cpu| cpu.counters != PortCounters::default())
        {
            let retired = self.counters.get(&0, 0).context(reading)?;
            let sums: Vec<PortSlot> = retired
                .iter()
                .zip(counted.iter())
                .map(|(retired, counted)| {
                    let mut sum = *retired;
                    sum.counters.add(&counted.counters);
                    sum
                })
                .collect();
            self.counters
                .set(0, PerCpuValues::try_from(sums)?, 0)
                .context("writing PORT_COUNTERS failed")?;
        }
        let zeros = PerCpuValues::try_from(vec![PortSlot::default(); cpus])?;
        self.counters
            .set(u32::from(slot), zeros, 0)
            .context("resetting PORT_COUNTERS failed")
    }

    /// The per-port verdicts of every slot, the retired counts of slot 0 too, summed over
    /// CPUs: their share of the interface's totals.
    pub fn totals(&self) -> anyhow::Result<PortCounters> {
        let mut total = PortCounters::default();
        for slot in 0..=MAX_PORTS {
            total.add(&self.slot_total(slot)?);
        }
        Ok(total)
    }

    /// Each protected port's counters, summed over CPUs.
    pub fn counters(&self) -> anyhow::Result<BTreeMap<u16, PortCounters>> {
        let mut counters = BTreeMap::new();
        for (port, slot) in self.list()? {
            counters.insert(port, self.slot_total(u32::from(slot))?);
        }
        Ok(counters)
    }

    /// One slot's counters, summed over CPUs.
    fn slot_total(&self, slot: u32) -> anyhow::Result<PortCounters> {
        let per_cpu = self
            .counters
            .get(&slot, 0)
            .context("reading PORT_COUNTERS failed")?;
        let mut total = PortCounters::default();
        per_cpu.iter().for_each(|cpu| total.add(&cpu.counters));
        Ok(total)
    }
}
