//! Running `cargo test` and closing with one total: cargo prints a "test result" line per
//! test binary, the last of which is often a doc-test binary with nothing in it.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

pub fn run(mut command: Command) -> anyhow::Result<()> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {command:?} failed"))?;
    let mut tally = Tally::default();
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line?;
        println!("{line}");
        tally.add(&line);
    }
    let status = child.wait()?;
    tally.print();
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    tally.require_some()
}

/// Tests passed and failed over all the "test result" lines seen.
#[derive(Default)]
pub struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// Counts a test binary's "test result: ..." line; other lines count nothing.
    pub fn add(&mut self, line: &str) {
        if let Some(result) = line.trim_end().strip_prefix("test result: ") {
            self.passed += count(result, " passed");
            self.failed += count(result, " failed");
        }
    }

    pub fn print(&self) {
        println!(
            "\nall tests: {} passed, {} failed",
            self.passed, self.failed
        );
    }

    /// A run that selected no test proves nothing (e.g. a misspelled filter).
    pub fn require_some(&self) -> anyhow::Result<()> {
        if self.passed + self.failed == 0 {
            bail!("no test ran");
        }
        Ok(())
    }
}

/// The number before `label` in "ok. 12 passed; 3 failed; ...".
fn count(result: &str, label: &str) -> u64 {
    result
        .split(';')
        .find(|part| part.ends_with(label))
        .and_then(|part| part.trim_end_matches(label).split_whitespace().last())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{Tally, count};

    #[test]
    fn reads_cargo_result_lines() {
        let result =
            "ok. 12 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.13s";
        assert_eq!(
            (count(result, " passed"), count(result, " failed")),
            (12, 3)
        );
    }

    #[test]
    fn sums_result_lines_only() {
        let mut tally = Tally::default();
        for line in [
            "test tests::a ... ok",
            "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\r",
            "test result: FAILED. 1 passed; 4 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            tally.add(line);
        }
        assert_eq!((tally.passed, tally.failed), (3, 4));
    }
}
