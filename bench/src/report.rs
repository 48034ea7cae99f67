//! Gates (numerator against a denominator measured in the same run), the printed table and
//! `results.json`.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{error::Error, machine::Machine};

/// How a gate compares its ratio with its goal.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Passes when `ratio >= goal` (throughput against a limit).
    AtLeast,
    /// Passes when `ratio <= goal` (latency or memory against a bound).
    AtMost,
}

/// One measured result against the limit it is judged by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gate {
    /// What was measured, e.g. `events/s`.
    pub unit: String,
    /// Our measured figure.
    pub numerator: f64,
    /// The machine's limit (or a fixed bound), measured in the same run where it is a limit.
    pub denominator: f64,
    /// `numerator / denominator`.
    pub ratio: f64,
    /// The goal for `ratio`.
    pub goal: f64,
    /// How `ratio` is compared with `goal`.
    pub direction: Direction,
    /// Whether the goal was met.
    pub pass: bool,
    /// Everything else worth keeping: counts, settings, partial figures.
    pub details: Value,
}

impl Gate {
    /// A gate from its two sides; `ratio` and `pass` follow.
    pub fn new(
        unit: &str,
        numerator: f64,
        denominator: f64,
        goal: f64,
        direction: Direction,
        details: Value,
    ) -> Self {
        let ratio = if denominator > 0.0 {
            numerator / denominator
        } else {
            f64::NAN
        };
        let pass = match direction {
            Direction::AtLeast => ratio >= goal,
            Direction::AtMost => ratio <= goal,
        };
        Self {
            unit: unit.to_owned(),
            numerator,
            denominator,
            ratio,
            goal,
            direction,
            pass,
            details,
        }
    }

    /// Marks a gate failed whatever its ratio (e.g. duplicates were found).
    pub fn fail_because(mut self, why: &str) -> Self {
        self.pass = false;
        if let Value::Object(map) = &mut self.details {
            map.insert("failed_because".into(), Value::String(why.to_owned()));
        }
        self
    }
}

/// Every gate of a run, by name (e.g. `s4.postgres.mixed`), plus the machine.
#[derive(Debug, Serialize)]
pub struct Results {
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// The command's arguments.
    pub args: Vec<String>,
    /// Where the run happened.
    pub machine: Machine,
    /// Gates by name, in name order.
    pub scenarios: BTreeMap<String, Gate>,
    /// Scenarios that could not run, with the reason.
    pub not_run: BTreeMap<String, String>,
}

impl Results {
    /// An empty result set for this machine.
    pub fn new(args: Vec<String>) -> Self {
        Self {
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            args,
            machine: Machine::detect(),
            scenarios: BTreeMap::new(),
            not_run: BTreeMap::new(),
        }
    }

    /// Records a gate and prints its row at once, so a long run shows progress.
    pub fn record(&mut self, name: &str, gate: Gate) {
        println!("{}", row(name, &gate));
        self.scenarios.insert(name.to_owned(), gate);
    }

    /// Prints the whole table.
    pub fn print_table(&self) {
        println!();
        println!("{}", header());
        for (name, gate) in &self.scenarios {
            println!("{}", row(name, gate));
        }
        for (name, why) in &self.not_run {
            println!("{name:<28} not run: {why}");
        }
    }

    /// S2's rate source: S1's deliveries/s measured in this run, else `given` (the
    /// command's `--s1-rate`).
    pub fn s1_rate(&self, given: Option<f64>) -> Option<f64> {
        self.scenarios
            .get("s1.throughput")
            .map(|gate| gate.numerator)
            .filter(|rate| rate.is_finite())
            .or(given)
    }

    /// Adds the gates and the not-run reasons of another run's `results.json` (a scenario
    /// run in its own process), without printing them again.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), Error> {
        #[derive(Deserialize)]
        struct Child {
            scenarios: BTreeMap<String, Gate>,
            not_run: BTreeMap<String, String>,
        }
        let child: Child = serde_json::from_slice(&std::fs::read(path)?)?;
        self.scenarios.extend(child.scenarios);
        self.not_run.extend(child.not_run);
        Ok(())
    }

    /// Writes `results.json` into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf, Error> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("results.json");
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}

/// The table's column names.
pub fn header() -> String {
    format!(
        "{:<28} {:>14} {:>14} {:>8} {:>8} {:>5}  unit",
        "scenario", "measured", "limit", "ratio", "goal", "pass"
    )
}

fn row(name: &str, gate: &Gate) -> String {
    let goal = match gate.direction {
        Direction::AtLeast => format!(">={:.2}", gate.goal),
        Direction::AtMost => format!("<={:.2}", gate.goal),
    };
    format!(
        "{:<28} {:>14.1} {:>14.1} {:>8.3} {:>8} {:>5}  {}",
        name,
        gate.numerator,
        gate.denominator,
        gate.ratio,
        goal,
        if gate.pass { "yes" } else { "NO" },
        gate.unit
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_pass_follow_the_direction() {
        let fast = Gate::new("x/s", 60.0, 100.0, 0.5, Direction::AtLeast, Value::Null);
        assert!(fast.pass);
        let slow = Gate::new("x/s", 40.0, 100.0, 0.5, Direction::AtLeast, Value::Null);
        assert!(!slow.pass);
        let small = Gate::new("MiB", 100.0, 256.0, 1.0, Direction::AtMost, Value::Null);
        assert!(small.pass);
        let unmeasured = Gate::new("x/s", 1.0, 0.0, 0.5, Direction::AtLeast, Value::Null);
        assert!(!unmeasured.pass, "a missing denominator never passes");
    }
}
