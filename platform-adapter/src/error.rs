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
    /// An id was empty or too long.
    #[error("invalid id: {0}")]
    InvalidId(String),
    /// A message to send broke the contract's bounds, or could not be serialized.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A received message broke the contract.
    #[error("cannot decode message: {0}")]
    Decode(#[from] crate::events::DecodeError),
    /// An exchange, queue or routing key name is not usable (AMQP allows 255 bytes).
    #[error("invalid AMQP name: {0}")]
    InvalidName(String),
}

impl Error {
    /// Whether the same operation may succeed later (broker down, connection lost).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Amqp(_) | Self::ConnectTimeout(_) | Self::NotConfirmed(_) => true,
            Self::InvalidId(_) | Self::Encode(_) | Self::Decode(_) | Self::InvalidName(_) => false,
        }
    }
}
