//! Building and running one fedibridge process: which roles it plays, and how it stops.

use std::{collections::BTreeSet, net::TcpListener, sync::Arc, time::Duration};

use actix_web::{App, HttpServer, dev::ServerHandle, web};
use platform_adapter::{Consumer, ConsumerConfig, Topology, connection::BrokerStatus};
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{Database, keys},
    error::Error,
    federation::{ClientConfig, FederationClient, urls::Urls},
    http::{self, AppState},
    inbox::{InboxRateLimits, InboxWriter},
    ingest::Ingest,
    relay,
    settings::Settings,
    telemetry::Metrics,
};

/// A part of the work a process can take on; several processes can split them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Role {
    /// HTTP: federation endpoints, APIs, pages, probes and metrics.
    Http,
    /// Consumes the platform's events from the broker.
    Consumer,
    /// Sends queued activities to remote inboxes.
    Delivery,
    /// Publishes the outbox toward the platform.
    Relay,
}

impl Role {
    /// Every role: what `serve` runs by default.
    pub const ALL: [Role; 4] = [Role::Http, Role::Consumer, Role::Delivery, Role::Relay];
}

/// A running (or ready to run) fedibridge process.
pub struct Application {
    state: AppState,
    roles: BTreeSet<Role>,
    server: Option<(actix_web::dev::Server, ServerHandle)>,
    port: Option<u16>,
    tasks: JoinSet<()>,
}

impl Application {
    /// Migrates the database, binds the listener and prepares the roles' tasks.
    ///
    /// Nothing is served until [`Application::run_until_stopped`].
    pub async fn build(settings: Settings, roles: &[Role]) -> Result<Self, Error> {
        let roles: BTreeSet<Role> = if roles.is_empty() {
            Role::ALL.into_iter().collect()
        } else {
            roles.iter().copied().collect()
        };
        let db = Database::new(&settings.database)?;
        let applied = db.migrate().await?;
        tracing::info!(database = %db.redacted_url(), applied, "database ready");

        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        // With a consumer, its own connection tells whether the broker is up; otherwise a
        // small monitor connection does, for /readyz.
        let broker = settings.broker.enabled().then(BrokerStatus::default);
        if let Some(status) = &broker
            && !roles.contains(&Role::Consumer)
        {
            tasks.spawn(platform_adapter::connection::monitor(
                settings.broker.url.trim().to_owned(),
                status.clone(),
                shutdown.clone(),
            ));
        }

        // The instance actor signs fetches; it must have a key before anything is fetched.
        db.write(|c| keys::ensure(c, None, crate::db::now_millis()).map(|_| ()))
            .await?;
        let client = FederationClient::new(ClientConfig::from_settings(&settings.federation)?)?;

        let metrics = Metrics::new()?;
        let state = AppState {
            urls: Urls::new(&settings.federation)?,
            client,
            delivery_wakeup: Arc::new(Notify::new()),
            fetch_failures: Arc::default(),
            inbox_limits: Arc::new(InboxRateLimits::new(&settings, &metrics)),
            // Half the pool: the rest serves the lookups before authentication, the relay
            // and the API while every batch slot is busy.
            inbox_writer: InboxWriter::start(
                db.clone(),
                usize::try_from(settings.database.pool_size / 2).unwrap_or(1),
            ),
            settings: Arc::new(settings),
            db,
            metrics,
            broker,
            shutdown,
        };

        if let Some(status) = &state.broker {
            let broker = &state.settings.broker;
            if roles.contains(&Role::Consumer) {
                let config = consumer_config(&state.settings)?;
                let sink = Arc::new(
                    Ingest::new(
                        state.db.clone(),
                        state.urls.clone(),
                        state.settings.clone(),
                        state.delivery_wakeup.clone(),
                    )
                    .with_fetcher(state.client.clone(), state.fetch_failures.clone()),
                );
                let consumer = Consumer::new(config, sink).with_status(status.clone());
                tasks.spawn(consumer.run(state.shutdown.clone()));
            }
            if roles.contains(&Role::Relay) {
                tasks.spawn(relay::run(
                    state.db.clone(),
                    broker.clone(),
                    state.shutdown.clone(),
                ));
            }
        }
        if roles.contains(&Role::Delivery) {
            tasks.spawn(crate::delivery::run(state.clone()));
        }

        let (server, port) = if roles.contains(&Role::Http) {
            let (server, port) = Self::http_server(&state)?;
            let handle = server.handle();
            (Some((server, handle)), Some(port))
        } else {
            (None, None)
        };
        Ok(Self {
            state,
            roles,
            server,
            port,
            tasks,
        })
    }

    fn http_server(state: &AppState) -> Result<(actix_web::dev::Server, u16), Error> {
        let settings = &state.settings.server;
        let listener = TcpListener::bind(settings.bind_addr()?)?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let max_body = settings.max_body_bytes;
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::JsonConfig::default().limit(max_body))
                .wrap_fn(http::record_metrics)
                .wrap(tracing_actix_web::TracingLogger::default())
                .configure(http::configure)
        })
        // Signals are handled once for the whole process (see `run_until_stopped`), so that
        // the HTTP server and the background roles stop together.
        .disable_signals()
        // A client that dribbles its request head (slowloris) is answered 408 and dropped;
        // inbox bodies have their own deadline (`inbox.body_timeout_secs`).
        .client_request_timeout(settings.client_request_timeout())
        .client_disconnect_timeout(settings.client_disconnect_timeout())
        .shutdown_timeout(settings.shutdown_timeout_secs);
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        Ok((server.listen(listener)?.run(), port))
    }

    /// The port the HTTP server listens on (useful with `server.bind` port 0).
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The roles this process plays.
    pub fn roles(&self) -> &BTreeSet<Role> {
        &self.roles
    }

    /// Cancel it to stop the application gracefully (signals do the same).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Shared state, for tests and embedding.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the shutdown token is cancelled or a role fails, then stops gracefully:
    /// the HTTP server finishes in-flight requests and background roles finish their
    /// current unit of work, all within `server.shutdown_timeout_secs`.
    pub async fn run_until_stopped(mut self) -> Result<(), Error> {
        let shutdown = self.state.shutdown.clone();
        let grace = self.state.settings.server.shutdown_timeout();
        let mut outcome = Ok(());
        let handle = self.server.as_ref().map(|(_, handle)| handle.clone());
        let server_task = self.server.take().map(|(server, _)| tokio::spawn(server));

        match server_task {
            Some(mut task) => {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    result = &mut task => {
                        outcome = match result {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => Err(Error::Io(e)),
                            Err(e) => Err(Error::Storage(format!("HTTP server task failed: {e}"))),
                        };
                    }
                }
                shutdown.cancel();
                if let Some(handle) = handle {
                    handle.stop(true).await;
                }
            }
            None => shutdown.cancelled().await,
        }

        let drained = tokio::time::timeout(grace + Duration::from_secs(1), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("background roles did not stop within the grace period; aborting them");
            self.tasks.abort_all();
        }
        tracing::info!("stopped");
        outcome
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) -> Result<(), Error> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
        token.cancel();
    });
    Ok(())
}

/// The consumer role's configuration, from the settings (also what the benchmarks run).
pub fn consumer_config(settings: &Settings) -> Result<ConsumerConfig, Error> {
    let broker = &settings.broker;
    let topology = Topology::new(
        &broker.events_exchange,
        &broker.events_queue,
        &broker.outbound_exchange,
    )?;
    let mut config = ConsumerConfig::new(broker.url.trim(), topology);
    config.declare_topology = broker.declare_topology;
    config.prefetch = broker.prefetch;
    config.max_batch = usize::from(broker.max_batch);
    // Named after its queue so operators (and tests) can tell consumers apart.
    config.connection_name = format!("fedibridge-consumer-{}", broker.events_queue);
    config.shutdown_grace = settings.server.shutdown_timeout();
    Ok(config)
}
