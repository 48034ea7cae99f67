//! The delivery engine: signs and sends stored activities to remote inboxes, with per-host
//! isolation, retries with backoff, a circuit breaker per host and a consent check at send
//! time.

mod attempt;
mod cache;
pub mod consent;
pub mod outcome;
pub mod policy;
mod worker;

pub use worker::run;
