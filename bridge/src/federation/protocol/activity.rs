//! Activities the bridge sends.

use serde::{Deserialize, Serialize};

use super::context::Context;

/// Activity types the bridge sends or understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActivityType {
    /// New object.
    Create,
    /// Changed object.
    Update,
    /// Removed object or actor.
    Delete,
    /// Follow accepted.
    Accept,
    /// Follow refused.
    Reject,
    /// Takes back an earlier activity.
    Undo,
    /// Blocks an actor.
    Block,
    /// Reports content.
    Flag,
    /// Account moved.
    Move,
    /// Boost.
    Announce,
    /// Follow request.
    Follow,
    /// Favourite.
    Like,
}

impl ActivityType {
    /// The ActivityStreams name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Update => "Update",
            Self::Delete => "Delete",
            Self::Accept => "Accept",
            Self::Reject => "Reject",
            Self::Undo => "Undo",
            Self::Block => "Block",
            Self::Flag => "Flag",
            Self::Move => "Move",
            Self::Announce => "Announce",
            Self::Follow => "Follow",
            Self::Like => "Like",
        }
    }
}

/// An outgoing activity wrapping `object`.
#[derive(Debug, Clone, Serialize)]
pub struct Activity<O: Serialize> {
    /// Context.
    #[serde(rename = "@context")]
    pub context: Context,
    /// Activity URL.
    pub id: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: ActivityType,
    /// Local actor.
    pub actor: String,
    /// What it acts on: an embedded object or a URL.
    pub object: O,
    /// Primary audience.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Secondary audience.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// Time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// Target (Move).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}
