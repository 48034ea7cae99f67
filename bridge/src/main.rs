//! The `fedibridge` command: serve, migrate, check, events, blocks.

mod blocks_command;

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
    /// Platform events: send them, inspect and replay the dead-letter queue.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Server blocks: refuse whole servers; import and export shared blocklists.
    Blocks {
        #[command(subcommand)]
        command: blocks_command::BlocksCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Send event files (JSON envelopes, as in platform-adapter/examples/inbound) through
    /// the configured transport: the broker when one is configured, otherwise straight into
    /// the bridge's sink.
    Publish {
        /// Event files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the dead-letter queue, or replay it.
    DeadLetters {
        /// Replay every dead letter (`all`) or the given message ids, instead of listing.
        #[arg(long, value_delimiter = ',')]
        replay: Vec<String>,
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
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
            Command::Events { command } => events(&settings, command).await,
            Command::Blocks { command } => blocks_command::run(&settings, command).await,
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

fn topology(settings: &Settings) -> anyhow::Result<platform_adapter::Topology> {
    let b = &settings.broker;
    Ok(platform_adapter::Topology::new(
        &b.events_exchange,
        &b.events_queue,
        &b.outbound_exchange,
    )?)
}

async fn events(settings: &Settings, command: EventsCommand) -> anyhow::Result<ExitCode> {
    match command {
        EventsCommand::Publish { files } => publish_events(settings, &files).await,
        EventsCommand::DeadLetters { replay, limit } => {
            dead_letters(settings, &replay, limit).await
        }
    }
}

async fn publish_events(settings: &Settings, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    let broker_url = settings
        .broker
        .enabled()
        .then(|| settings.broker.url.trim().to_owned());
    let publisher = broker_url
        .as_ref()
        .map(|url| platform_adapter::Publisher::new(url.clone(), "fedibridge-cli"));
    if let Some(url) = &broker_url
        && settings.broker.declare_topology
    {
        topology(settings)?.declare_at(url).await?;
    }
    let sink = match &publisher {
        Some(_) => None,
        None => {
            let db = Database::new(&settings.database)?;
            db.migrate().await?;
            // The instance actor signs the fetch of a reported account it does not know.
            db.write(|c| bridge::db::keys::ensure(c, None, bridge::db::now_millis()).map(|_| ()))
                .await?;
            let client = bridge::federation::FederationClient::new(
                bridge::federation::ClientConfig::from_settings(&settings.federation)?,
            )?;
            Some(
                bridge::ingest::Ingest::new(
                    db,
                    bridge::federation::urls::Urls::new(&settings.federation)?,
                    std::sync::Arc::new(settings.clone()),
                    std::sync::Arc::new(tokio::sync::Notify::new()),
                )
                .with_fetcher(client, std::sync::Arc::default()),
            )
        }
    };
    for file in files {
        let shown = file.display();
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(error) => {
                failed += 1;
                println!("{shown}: cannot read: {error}");
                continue;
            }
        };
        let event = match platform_adapter::decode_inbound(&bytes) {
            Ok(event) => event,
            Err(error) => {
                failed += 1;
                println!(
                    "{shown}: refused ({}): {}",
                    error.kind.as_str(),
                    error.reason
                );
                continue;
            }
        };
        let (kind, id) = (event.routing_key(), event.id.as_str().to_owned());
        let outcome = match (&publisher, &sink) {
            (Some(publisher), _) => publisher
                .publish(&settings.broker.events_exchange, kind, &id, &bytes, &[])
                .await
                .map(|()| "published to the broker".to_owned())
                .map_err(anyhow::Error::from),
            (None, Some(sink)) => sink
                .apply(event)
                .await
                .map(|handled| format!("{handled:?}").to_lowercase())
                .map_err(anyhow::Error::from),
            (None, None) => Err(anyhow::anyhow!("no transport")),
        };
        match outcome {
            Ok(result) => println!("{shown}: {kind} {id}: {result}"),
            Err(error) => {
                failed += 1;
                println!("{shown}: {kind} {id}: FAILED: {error:#}");
            }
        }
    }
    if let Some(publisher) = publisher {
        publisher.close().await;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn dead_letters(
    settings: &Settings,
    replay: &[String],
    limit: usize,
) -> anyhow::Result<ExitCode> {
    if !settings.broker.enabled() {
        println!(
            "no broker configured: events sent over HTTP are refused at once, so there is no dead-letter queue"
        );
        return Ok(ExitCode::FAILURE);
    }
    let letters =
        platform_adapter::DeadLetters::open(settings.broker.url.trim(), topology(settings)?)
            .await?;
    if replay.is_empty() {
        let count = letters.count().await?;
        println!("{count} dead letter(s)");
        for letter in letters.list(limit).await? {
            println!(
                "{}\t{}\t{}\t{}",
                letter.message_id.as_deref().unwrap_or("-"),
                letter.event_type.as_deref().unwrap_or(&letter.routing_key),
                letter.kind.as_deref().unwrap_or("-"),
                letter.reason.as_deref().unwrap_or("-"),
            );
        }
    } else {
        let selection = if replay.iter().any(|r| r == "all") {
            platform_adapter::ReplaySelection::All
        } else {
            platform_adapter::ReplaySelection::MessageIds(replay.to_vec())
        };
        let replayed = letters.replay(&selection).await?;
        println!("{replayed} dead letter(s) replayed");
    }
    letters.close().await;
    Ok(ExitCode::SUCCESS)
}
