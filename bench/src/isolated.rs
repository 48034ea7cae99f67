//! Runs one scenario in a child process of this same binary and merges its results.
//!
//! Why a process each: a scenario measures the bridge as a freshly started process would run
//! it. In one process, S6's million queued deliveries left the allocator's arenas, the fake
//! inboxes' per-inbox maps and the runtime's threads to whatever came next, and S1, S2 and S5
//! measured 20–40 % worse after it than alone.

use std::process::Command;

use clap::ValueEnum;

use crate::{Cli, Scenario, report::Results};

/// Runs `scenario` as `fedibridge-bench <scenario> --part` with this run's settings, waits
/// for it, and adds its gates (or why it did not run) to `results`.
pub fn run(cli: &Cli, scenario: Scenario, results: &mut Results) {
    let name = scenario
        .to_possible_value()
        .map_or_else(|| format!("{scenario:?}"), |v| v.get_name().to_owned());
    let out = cli.out.join("parts").join(&name);
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            results
                .not_run
                .insert(name, format!("cannot find this binary: {error}"));
            return;
        }
    };
    let mut command = Command::new(exe);
    command
        .arg(&name)
        .arg("--part")
        .arg("--out")
        .arg(&out)
        .arg("--broker-url")
        .arg(&cli.broker_url)
        .arg("--postgres-admin")
        .arg(&cli.postgres_admin)
        .arg("--deadline-secs")
        .arg(cli.deadline_secs.to_string());
    if cli.quick {
        command.arg("--quick");
    }
    // S2's rate is half of S1's: from S1's child when it ran before, else from the command.
    let s1_rate = results
        .scenarios
        .get("s1.throughput")
        .map(|gate| gate.numerator)
        .filter(|rate| rate.is_finite())
        .or(cli.s1_rate);
    if let Some(rate) = s1_rate {
        command.arg("--s1-rate").arg(rate.to_string());
    }
    // A result file left by an earlier run must not pass for this one's.
    let file = out.join("results.json");
    let _ = std::fs::remove_file(&file);
    let status = match command.status() {
        Ok(status) => status,
        Err(error) => {
            results
                .not_run
                .insert(name, format!("cannot start its process: {error}"));
            return;
        }
    };
    if let Err(error) = results.merge_file(&file) {
        results.not_run.insert(
            name,
            format!("its process ended ({status}) without results: {error}"),
        );
    }
}
