//! WebFinger (RFC 7033) resource descriptors.

use serde::{Deserialize, Serialize};

/// A JSON Resource Descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jrd {
    /// `acct:name@domain`.
    pub subject: String,
    /// Other names of the same resource (the actor URL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Links.
    #[serde(default)]
    pub links: Vec<JrdLink>,
}

/// One link of a descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JrdLink {
    /// Relation.
    pub rel: String,
    /// Media type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub href: Option<String>,
    /// URI template (remote follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}
