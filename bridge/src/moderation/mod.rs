//! Moderation by the operator and the platform: server blocks (added one by one or
//! imported from shared blocklists) and reports forwarded to remote servers.

pub mod blocklist;
pub mod domain;
pub mod domain_blocks;
pub mod reports;

pub use domain::{BlockDomain, InvalidDomain};
