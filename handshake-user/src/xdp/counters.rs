//! Counter totals read from the per-CPU map, and the table `handshake run` prints.

use std::fmt::Write as _;

use handshake_common::counters::{ALL, COUNTER_COUNT, Counter};

/// Every counter summed over CPUs, in map order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot(pub [u64; COUNTER_COUNT as usize]);

impl Snapshot {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// SYNs to protected ports, whatever their verdict.
    pub fn syns(&self) -> u64 {
        Counter::SYN_VERDICTS
            .iter()
            .map(|&counter| self.get(counter))
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// What changed since `earlier` (counters only grow while attached).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let mut delta = [0; COUNTER_COUNT as usize];
        for (index, value) in delta.iter_mut().enumerate() {
            *value = self.0[index].saturating_sub(earlier.0[index]);
        }
        Snapshot(delta)
    }

    /// One line per counter: name, total, and the rate over `seconds`.
    pub fn table(&self, earlier: &Snapshot, seconds: f64) -> String {
        let rates = self.since(earlier);
        let mut table = format!("{:<28}{:>14}{:>12}\n", "counter", "total", "per second");
        for (counter, name, _) in ALL {
            let rate = rates.get(counter) as f64 / seconds.max(f64::EPSILON);
            let _ = writeln!(table, "{name:<28}{:>14}{rate:>12.0}", self.get(counter));
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_shows_totals_and_rates() {
        let earlier = Snapshot::default();
        let mut now = Snapshot::default();
        now.0[Counter::SynAckSent as usize] = 30;
        now.0[Counter::Malformed as usize] = 2;
        let table = now.table(&earlier, 2.0);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 1 + COUNTER_COUNT as usize);
        assert_eq!(
            lines[1],
            format!("{:<28}{:>14}{:>12}", "syn_ack_sent", 30, 15)
        );
        assert_eq!(
            lines[1 + Counter::Malformed as usize],
            format!("{:<28}{:>14}{:>12}", "malformed", 2, 1)
        );
        assert_eq!(
            lines[COUNTER_COUNT as usize],
            format!("{:<28}{:>14}{:>12}", "syn_dropped_reflection_cap", 0, 0)
        );
        assert_eq!(now.syns(), 30);
        assert_eq!(now.total(), 32);
    }
}
