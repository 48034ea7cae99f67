//! fedibridge: lets users of a closed platform opt in to sharing on the fediverse.
//!
//! The crate owns storage ([`db`]), configuration ([`settings`]), the ActivityPub transport
//! ([`federation`]), the HTTP surface ([`http`]) and the process lifecycle ([`startup`]). The platform's event contract and
//! broker plumbing live in the `platform-adapter` crate.

pub mod db;
pub mod delivery;
pub mod error;
pub mod federation;
pub mod http;
pub mod inbox;
pub mod ingest;
pub mod moderation;
pub mod opt_in;
pub mod relay;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod to_platform;

pub use error::Error;
pub use settings::Settings;
pub use startup::{Application, Role};
