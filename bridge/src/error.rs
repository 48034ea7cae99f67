//! The bridge's one error type.

use crate::federation::{RemoteFailure, SignatureRejection};
use crate::inbox::InboxRejection;
use crate::settings::SettingsError;

/// Everything that can go wrong inside the bridge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration that cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A query failed.
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    /// No connection could be had from the pool.
    #[error("database unavailable: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    /// Storage misuse or an impossible state.
    #[error("storage: {0}")]
    Storage(String),
    /// A migration failed or could not be read.
    #[error("migrations: {0}")]
    Migration(String),
    /// The platform's broker.
    #[error("broker: {0}")]
    Broker(#[from] platform_adapter::Error),
    /// Local I/O (binding the listener, files).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Metrics registry misuse (duplicate registration).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A key could not be generated, parsed or used.
    #[error("key: {0}")]
    Key(String),
    /// An inbound HTTP signature was refused; see [`SignatureRejection::http_status`].
    #[error("HTTP signature rejected: {0}")]
    Signature(#[from] SignatureRejection),
    /// A remote server could not be used (refused by policy, unreachable, bad answer).
    #[error("remote {url}: {failure}")]
    Remote {
        /// The URL being fetched or delivered to.
        url: String,
        /// What went wrong.
        failure: RemoteFailure,
    },
    /// The outbound HTTP client could not be built.
    #[error("HTTP client: {0}")]
    HttpClient(String),
    /// An inbound activity was refused; see [`InboxRejection::http_status`].
    #[error("inbox: {0}")]
    Inbox(#[from] InboxRejection),
    /// A platform event that can never take effect as sent (it breaks a rule or contradicts
    /// what the bridge knows); the consumer dead-letters it with this reason.
    #[error("event refused: {0}")]
    EventRefused(String),
    /// One inbound request needed more remote fetches than it is allowed.
    #[error("the budget of {0} remote fetches for this request is spent")]
    FetchBudgetExhausted(u32),
}

impl Error {
    /// Whether retrying later may succeed (the database or broker is down), as opposed to
    /// an error that will repeat forever for the same input.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Database(e) => {
                matches!(
                    e,
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::ClosedConnection
                            | diesel::result::DatabaseErrorKind::SerializationFailure,
                        _
                    ) | diesel::result::Error::BrokenTransactionManager
                ) || is_sqlite_busy(e)
            }
            Self::Broker(e) => e.is_transient(),
            Self::Io(_) => true,
            Self::Remote { failure, .. } => failure.is_transient(),
            Self::Settings(_)
            | Self::Storage(_)
            | Self::Migration(_)
            | Self::Metrics(_)
            | Self::Key(_)
            | Self::Signature(_)
            | Self::HttpClient(_)
            | Self::Inbox(_)
            | Self::EventRefused(_)
            | Self::FetchBudgetExhausted(_) => false,
        }
    }
}

fn is_sqlite_busy(error: &diesel::result::Error) -> bool {
    match error {
        diesel::result::Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked") || message.contains("database is busy")
        }
        _ => false,
    }
}
