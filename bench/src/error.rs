//! The one error type of the benchmark harness: anything that stops a scenario from running.

/// Why a scenario (or the harness) could not run; a slow result is never an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bridge refused a setup step or failed while running.
    #[error("bridge: {0}")]
    Bridge(#[from] bridge::Error),
    /// The bridge's configuration could not be built.
    #[error("settings: {0}")]
    Settings(#[from] bridge::settings::SettingsError),
    /// The platform adapter failed (topology, publisher).
    #[error("platform adapter: {0}")]
    Adapter(#[from] platform_adapter::Error),
    /// RabbitMQ failed during calibration or pre-loading.
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    /// PostgreSQL administration (creating or dropping the scenario's database).
    #[error("database: {0}")]
    Database(String),
    /// Files, processes, sockets.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// JSON encoding of events or results.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A scenario could not reach the state it measures (with what was missing).
    #[error("{0}")]
    Setup(String),
}

impl From<diesel::ConnectionError> for Error {
    fn from(error: diesel::ConnectionError) -> Self {
        Self::Database(error.to_string())
    }
}

impl From<diesel::result::Error> for Error {
    fn from(error: diesel::result::Error) -> Self {
        Self::Database(error.to_string())
    }
}
