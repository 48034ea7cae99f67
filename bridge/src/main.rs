//! The `fedibridge` command: serve, migrate, check.

use std::{path::PathBuf, process::ExitCode};

use bridge::{Application, Role, Settings, db::Database, startup::cancel_on_signal, telemetry};
use clap::{Parser, Subcommand};

/// Opt-in fediverse sharing for a closed platform.
#[derive(Debug, Parser)]
#[command(name = "fedibridge", version, about)]
struct Cli {
    /// Configuration file layered over the built-in defaults (environment variables
    /// FEDIBRIDGE__SECTION__KEY override both).
    #[arg(
        long,
        short,
        global = true,
        env = "FEDIBRIDGE_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bridge: HTTP, event consumer, delivery and outbox relay.
    Serve {
        /// Only these roles (comma-separated), so several processes can share the work.
        #[arg(long, value_enum, value_delimiter = ',', env = "FEDIBRIDGE_ROLES")]
        roles: Vec<Role>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and connect to the database and the broker.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("fedibridge: {error}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_tracing(&settings.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("fedibridge: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { roles } => serve(settings, &roles).await,
            Command::Migrate => migrate(&settings).await,
            Command::Check => check(&settings).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("fedibridge: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, roles: &[Role]) -> anyhow::Result<ExitCode> {
    let base_url = settings.federation.base_url.clone();
    let app = Application::build(settings, roles).await?;
    cancel_on_signal(app.shutdown_token())?;
    let roles: Vec<String> = app
        .roles()
        .iter()
        .map(|r| format!("{r:?}").to_lowercase())
        .collect();
    match app.port() {
        Some(port) => {
            tracing::info!(port, %base_url, roles = %roles.join(","), "fedibridge serving")
        }
        None => tracing::info!(roles = %roles.join(","), "fedibridge running without HTTP"),
    }
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

async fn migrate(settings: &Settings) -> anyhow::Result<ExitCode> {
    let db = Database::new(&settings.database)?;
    let applied = db.migrate().await?;
    println!("{}: {applied} migration(s) applied", db.redacted_url());
    Ok(ExitCode::SUCCESS)
}

async fn check(settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut healthy = true;
    println!(
        "configuration: ok (base URL {}, handles @NAME@{})",
        settings.federation.base_url, settings.federation.domain
    );
    let db = Database::new(&settings.database)?;
    match db.ping().await {
        Ok(()) => match db.pending_migrations().await {
            Ok(pending) if pending.is_empty() => {
                println!("database: ok ({}, schema up to date)", db.redacted_url());
            }
            Ok(pending) => println!(
                "database: ok ({}, {} migration(s) pending; `fedibridge migrate` or `serve` applies them)",
                db.redacted_url(),
                pending.len()
            ),
            Err(error) => {
                healthy = false;
                println!(
                    "database: FAILED reading migrations at {}: {error}",
                    db.redacted_url()
                );
            }
        },
        Err(error) => {
            healthy = false;
            println!(
                "database: FAILED to connect to {}: {error}",
                db.redacted_url()
            );
        }
    }
    if settings.broker.enabled() {
        let url = settings.broker.url.trim();
        let shown = platform_adapter::connection::redact(url);
        match platform_adapter::connection::probe(url).await {
            Ok(()) => println!("broker: ok ({shown})"),
            Err(error) => {
                healthy = false;
                println!("broker: FAILED to connect to {shown}: {error}");
            }
        }
    } else {
        println!("broker: not configured (the platform uses the HTTP ingest endpoint)");
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
