//! The platform's side of fedibridge: its event contract and the RabbitMQ plumbing.
//!
//! This crate knows nothing of SQL or ActivityPub. It connects to the platform's broker,
//! hands each event to a sink owned by the bridge, and acknowledges an event only once the
//! sink says its effect is stored.

pub mod connection;
pub mod consumer;
pub mod dead_letters;
mod error;
pub mod events;
pub mod headers;
pub mod publisher;
pub mod schema;
pub mod sink;
pub mod topology;

pub use error::Error;

pub use consumer::{Consumer, ConsumerConfig, ConsumerCounters, CounterSnapshot};
pub use dead_letters::{DeadLetter, DeadLetters, ReplaySelection};
pub use events::{DecodeError, DecodeErrorKind, InboundEvent, OutboundEvent, decode_inbound};
pub use publisher::Publisher;
pub use sink::{EventSink, Handled, SinkError};
pub use topology::Topology;
