//! Runs one scenario in a child process of this same binary and merges its results.
//!
//! Why a process each: a scenario should measure the bridge as a freshly started process
//! runs it, not one that still holds an earlier scenario's heap, runtime threads, pools and
//! fake inboxes (S6 alone queues a million deliveries). Whether that moved a given figure
//! is recorded in BENCHMARKS.md, not assumed here.

use std::{path::Path, process::Command};

use clap::ValueEnum;

use crate::{Cli, Scenario, report::Results};

/// Runs `scenario` as `fedibridge-bench <scenario> --part` with this run's settings, waits
/// for it, and adds its gates (or why it did not run) to `results`.
pub fn run(cli: &Cli, scenario: Scenario, results: &mut Results) {
    let name = scenario
        .to_possible_value()
        .map_or_else(|| format!("{scenario:?}"), |v| v.get_name().to_owned());
    let out = cli.out.join("parts").join(&name);
    // S2's rate is half of S1's: from S1's child when it ran before, else from the command.
    let s1_rate = results.s1_rate(cli.s1_rate);
    if let Err(why) = run_child(cli, &name, &out, s1_rate, results) {
        results.not_run.insert(name, why);
    }
}

/// Starts the child, waits for it and merges the `results.json` it wrote into `out`.
fn run_child(
    cli: &Cli,
    name: &str,
    out: &Path,
    s1_rate: Option<f64>,
    results: &mut Results,
) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut command = Command::new(exe);
    command
        .arg(name)
        .arg("--part")
        .arg("--out")
        .arg(out)
        .arg("--broker-url")
        .arg(&cli.broker_url)
        .arg("--postgres-admin")
        .arg(&cli.postgres_admin)
        .arg("--deadline-secs")
        .arg(cli.deadline_secs.to_string());
    if cli.quick {
        command.arg("--quick");
    }
    if let Some(rate) = s1_rate {
        command.arg("--s1-rate").arg(rate.to_string());
    }
    // A result file left by an earlier run must not pass for this one's.
    let file = out.join("results.json");
    let _ = std::fs::remove_file(&file);
    let status = command
        .status()
        .map_err(|e| format!("cannot start its process: {e}"))?;
    results
        .merge_file(&file)
        .map_err(|e| format!("its process ended ({status}) without results: {e}"))
}
