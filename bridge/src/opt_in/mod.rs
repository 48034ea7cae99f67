//! The opt-in lifecycle: sharing states, eligibility gates and the transitions between them.
//!
//! `off → on → paused → on …`, `on | paused → off`. Only a user who is `on` federates.

pub mod controls;
mod gates;
pub mod lifecycle;
pub mod receipt;
pub mod status;

pub use gates::{Gate, failing_gates};

use serde::{Deserialize, Serialize};

/// Where a user's fediverse sharing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SharingState {
    /// Not sharing: never turned on, or turned off (then the actor is gone for good).
    Off,
    /// Sharing: public posts federate.
    On,
    /// Turned on but currently ineligible: nothing new federates, the actor is unavailable.
    Paused,
}

impl SharingState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::Paused => "paused",
        }
    }

    /// Reads the stored spelling; anything unknown is treated as `off`, the safe side.
    pub fn parse(value: &str) -> Self {
        match value {
            "on" => Self::On,
            "paused" => Self::Paused,
            _ => Self::Off,
        }
    }
}

/// Who asked for a change, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// The user, on the settings page.
    User,
    /// The platform backend, through the API or an event.
    Platform,
    /// fedibridge itself (eligibility changes).
    System,
    /// The operator, with the `fedibridge` command (server blocks).
    Operator,
}

impl Initiator {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Platform => "platform",
            Self::System => "system",
            Self::Operator => "operator",
        }
    }
}
