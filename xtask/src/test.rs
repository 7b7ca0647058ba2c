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
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            passed += count(result, " passed");
            failed += count(result, " failed");
        }
    }
    let status = child.wait()?;
    println!("\nall tests: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    if passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

/// The number before `label` in "ok. 12 passed; 0 failed; ...".
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
    use super::count;

    #[test]
    fn reads_cargo_result_lines() {
        let result =
            "ok. 12 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.13s";
        assert_eq!(
            (count(result, " passed"), count(result, " failed")),
            (12, 3)
        );
    }
}
