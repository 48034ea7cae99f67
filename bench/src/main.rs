//! `fedibridge-bench`: runs the benchmark scenarios on loopback, each against a limit of
//! this machine measured in the same run, prints the ratios and writes
//! `bench-results/results.json`. Exits non-zero only when a scenario could not run.

mod bridge_config;
mod broker;
mod database;
mod error;
mod events;
mod fake_actors;
mod fixtures;
mod isolated;
mod latency;
mod machine;
mod openssl_speed;
mod process;
mod recording_sinks;
mod report;
mod s1_delivery;
mod s2_latency;
mod s3_inbox;
mod s4_ingest;
mod s5_catchup;
mod sinks;
mod sql_stats;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, ValueEnum};

use crate::report::Results;

/// Benchmarks of fedibridge against the machine's own limits.
#[derive(Debug, Parser)]
#[command(name = "fedibridge-bench", version, about)]
struct Cli {
    /// Scenarios to run (in this order: S1, S6, S4, S2, S3, S5). Several are run each in a
    /// process of its own, so that none inherits another's heap, threads or fake inboxes.
    #[arg(value_enum, default_value = "all")]
    scenarios: Vec<Scenario>,
    /// Runs several scenarios in this one process instead (to compare with isolated runs).
    #[arg(long)]
    one_process: bool,
    /// S1's deliveries/s, for S2's event rate (half of it) when S1 does not run first.
    #[arg(long)]
    s1_rate: Option<f64>,
    /// Set by a parent run on its children: no machine line, header or final table.
    #[arg(long, hide = true)]
    part: bool,
    /// Smaller, faster variants (e.g. S4: 20,000 events instead of 200,000; see BENCHMARKS.md).
    #[arg(long)]
    quick: bool,
    /// Where `results.json` goes.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// RabbitMQ used for both sides of the broker scenarios.
    #[arg(
        long,
        env = "FEDIBRIDGE_BENCH_BROKER_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    broker_url: String,
    /// PostgreSQL URL allowed to CREATE DATABASE (each run gets a fresh database). Plain on
    /// loopback, as the broker's AMQP is: TLS to a database on the same machine only adds
    /// its cost (about an eighth of PostgreSQL's CPU in S3) to every scenario.
    #[arg(
        long,
        env = "FEDIBRIDGE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
    )]
    postgres_admin: String,
    /// Longest any single measured phase may take before it is cut and reported unfinished.
    #[arg(long, default_value_t = 900)]
    deadline_secs: u64,
}

/// A scenario of BENCHMARKS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Every scenario below that is implemented.
    All,
    /// Fan-out deliveries against RSA-2048 signs/s.
    S1,
    /// Latency event → remote POST against a bare publish → consume → POST.
    S2,
    /// Signed inbox activities/s against confirmed publishes/s; inbox p99.
    S3,
    /// Event ingest against the raw RabbitMQ drain rate.
    S4,
    /// Catch-up after an outage at a 150 ms round trip against per-host concurrency ÷ RTT.
    S5,
    /// Memory with a million queued deliveries; CPU per delivery against one signature.
    S6,
}

/// What every scenario needs to reach the services.
pub struct Env {
    /// AMQP URL.
    pub broker_url: String,
    /// PostgreSQL admin URL.
    pub postgres_admin: String,
    /// Smaller variants.
    pub quick: bool,
    /// Cap on any measured phase.
    pub deadline: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env {
        broker_url: cli.broker_url.clone(),
        postgres_admin: cli.postgres_admin.clone(),
        quick: cli.quick,
        deadline: Duration::from_secs(cli.deadline_secs),
    };
    bridge::telemetry::init_tracing(&bridge::settings::LogSettings {
        format: bridge::settings::LogFormat::Pretty,
        level: "warn".into(),
    });
    sql_stats::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fedibridge-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut scenarios = cli.scenarios.clone();
    if scenarios.contains(&Scenario::All) {
        scenarios = vec![
            Scenario::S1,
            Scenario::S6,
            Scenario::S4,
            Scenario::S2,
            Scenario::S3,
            Scenario::S5,
        ];
    }
    let mut results = Results::new(std::env::args().skip(1).collect());
    if !cli.part {
        println!(
            "machine: {} cores, {}, {} MiB",
            results.machine.nproc, results.machine.cpu_model, results.machine.memory_mib
        );
        println!("{}", report::header());
    }
    if scenarios.len() > 1 && !cli.one_process {
        for scenario in &scenarios {
            isolated::run(&cli, *scenario, &mut results);
        }
    } else {
        runtime.block_on(run_here(&env, &scenarios, &mut results, cli.s1_rate));
    }
    if !cli.part {
        results.print_table();
    }
    match results.write(&cli.out) {
        Ok(path) => println!("\nwritten: {}", path.display()),
        Err(error) => {
            eprintln!("fedibridge-bench: cannot write results: {error}");
            return ExitCode::FAILURE;
        }
    }
    if results.not_run.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `scenarios` one after another in this process.
async fn run_here(env: &Env, scenarios: &[Scenario], results: &mut Results, s1_rate: Option<f64>) {
    // S6 and S1 share the openssl measurement and the fake inboxes when both run here.
    let (s1, s6) = (
        scenarios.contains(&Scenario::S1),
        scenarios.contains(&Scenario::S6),
    );
    if s1 || s6 {
        s1_delivery::run(env, results, s1, s6).await;
    }
    if scenarios.contains(&Scenario::S4) {
        database::settle(&env.postgres_admin);
        s4_ingest::run(env, results).await;
    }
    if scenarios.contains(&Scenario::S2) {
        // Half of S1's rate when S1 ran or was given (else a fixed rate; see s2_latency).
        let s1_rate = results.s1_rate(s1_rate);
        database::settle(&env.postgres_admin);
        s2_latency::run(env, results, s1_rate).await;
    }
    if scenarios.contains(&Scenario::S3) {
        database::settle(&env.postgres_admin);
        s3_inbox::run(env, results).await;
    }
    if scenarios.contains(&Scenario::S5) {
        database::settle(&env.postgres_admin);
        s5_catchup::run(env, results).await;
    }
}
