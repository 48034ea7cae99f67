//! The adapter's one error type.

/// What can go wrong between the platform's broker and the bridge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The AMQP client reported a failure (connection, channel, protocol).
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    /// Connecting took longer than allowed.
    #[error("timed out connecting to {0}")]
    ConnectTimeout(String),
    /// The broker refused a publish (nack) or returned it as unroutable.
    #[error("publish not confirmed: {0}")]
    NotConfirmed(String),
}

impl Error {
    /// Whether the same operation may succeed later (broker down, connection lost).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Amqp(_) | Self::ConnectTimeout(_) | Self::NotConfirmed(_) => true,
        }
    }
}
