//! NodeInfo 2.0 / 2.1 documents.

use serde::Serialize;

/// A NodeInfo document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `2.0` or `2.1`.
    pub version: &'static str,
    /// The server software.
    pub software: Software,
    /// Always `["activitypub"]`.
    pub protocols: Vec<&'static str>,
    /// Third-party services (none).
    pub services: Services,
    /// Registrations happen on the platform, never here.
    pub open_registrations: bool,
    /// Counts.
    pub usage: Usage,
    /// Free-form metadata.
    pub metadata: serde_json::Value,
}

/// Software name and version.
#[derive(Debug, Clone, Serialize)]
pub struct Software {
    /// `fedibridge`.
    pub name: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// Source repository (2.1 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<&'static str>,
    /// Home page (2.1 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homepage: Option<&'static str>,
}

/// Inbound and outbound services (always empty).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Services {
    /// None.
    pub inbound: Vec<String>,
    /// None.
    pub outbound: Vec<String>,
}

/// Usage counts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Users.
    pub users: UserCounts,
    /// Federated posts.
    pub local_posts: i64,
}

/// User counts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCounts {
    /// Users sharing now.
    pub total: i64,
    /// Same (activity is not tracked separately).
    pub active_month: i64,
    /// Same.
    pub active_halfyear: i64,
}
