//! The platform's side of fedibridge: its event contract and the RabbitMQ plumbing.
//!
//! This crate knows nothing of SQL or ActivityPub. It connects to the platform's broker,
//! hands each event to a sink owned by the bridge, and acknowledges an event only once the
//! sink says its effect is stored.

pub mod connection;
mod error;
pub mod events;
pub mod schema;

pub use error::Error;
