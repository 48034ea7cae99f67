//! The delivery engine: signs and sends stored activities to remote inboxes, with per-host
//! isolation, retries with backoff, a circuit breaker per host and consent and block checks
//! at send time.

mod attempt;
pub mod blocks;
mod cache;
pub mod consent;
mod host_limit;
pub mod outcome;
pub mod policy;
mod worker;

pub use worker::run;
