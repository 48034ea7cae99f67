//! Reading an inbound activity: bounded depth, then a strict typed envelope.
//!
//! Only the envelope (`id`, `type`, `actor`) is checked here, before authentication; the
//! object is read by the handler of each kind, after it.

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::rejection::InboxRejection;
use crate::federation::urls::Urls;

/// Deepest nesting of arrays and objects accepted (Mastodon activities need about 6).
pub const MAX_JSON_DEPTH: usize = 32;

/// Longest URL accepted in any id.
pub const MAX_URL_LEN: usize = 2048;

/// Activity types the inbox understands; anything else is accepted and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActivityKind {
    /// Follow request.
    Follow,
    /// Takes back a Follow, Like, Announce or Block.
    Undo,
    /// Favourite.
    Like,
    /// Boost.
    Announce,
    /// New object.
    Create,
    /// Changed object or actor.
    Update,
    /// Removed object or actor.
    Delete,
    /// Blocks one of our actors.
    Block,
    /// Report.
    Flag,
    /// Account migration.
    Move,
    /// A type we do not act on (Accept, Reject, Add, Remove, EmojiReact, …).
    Other,
}

impl ActivityKind {
    /// From the ActivityStreams name.
    pub fn from_type(name: &str) -> Self {
        match name {
            "Follow" => Self::Follow,
            "Undo" => Self::Undo,
            "Like" => Self::Like,
            "Announce" => Self::Announce,
            "Create" => Self::Create,
            "Update" => Self::Update,
            "Delete" => Self::Delete,
            "Block" => Self::Block,
            "Flag" => Self::Flag,
            "Move" => Self::Move,
            _ => Self::Other,
        }
    }

    /// The ActivityStreams name (`Other` for the rest).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Follow => "Follow",
            Self::Undo => "Undo",
            Self::Like => "Like",
            Self::Announce => "Announce",
            Self::Create => "Create",
            Self::Update => "Update",
            Self::Delete => "Delete",
            Self::Block => "Block",
            Self::Flag => "Flag",
            Self::Move => "Move",
            Self::Other => "Other",
        }
    }
}

/// An inbound activity whose envelope is well formed.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundActivity {
    /// Its id: http(s), not ours, on the actor's origin.
    pub id: Url,
    /// Its kind.
    pub kind: ActivityKind,
    /// The `type` as sent (for logs and the dedupe record).
    pub type_name: String,
    /// Who performs it.
    pub actor: Url,
    /// `object`, as sent (`Null` when absent).
    pub object: Value,
    /// `target`, as sent (`Null` when absent).
    pub target: Value,
    /// `content` (a Flag's comment).
    pub content: Option<String>,
}

impl InboundActivity {
    /// The object's id: the object itself when it is a URL, or its `id`.
    pub fn object_id(&self) -> Option<Url> {
        value_id(&self.object)
    }

    /// The target's id.
    pub fn target_id(&self) -> Option<Url> {
        value_id(&self.target)
    }

    /// The object when it is embedded (an object with more than an id).
    pub fn embedded_object(&self) -> Option<&serde_json::Map<String, Value>> {
        self.object.as_object()
    }
}

/// A URL, or an object's `id`, as an http(s) URL.
pub fn value_id(value: &Value) -> Option<Url> {
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Object(map) => map.get("id")?.as_str()?,
        _ => return None,
    };
    parse_http_url(text)
}

/// An absolute http(s) URL no longer than [`MAX_URL_LEN`].
pub fn parse_http_url(text: &str) -> Option<Url> {
    if text.len() > MAX_URL_LEN {
        return None;
    }
    Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    actor: ActorField,
    #[serde(default)]
    object: Value,
    #[serde(default)]
    target: Value,
    #[serde(default)]
    content: Option<String>,
}

/// `actor` is a URL; an embedded actor object is accepted for its `id` only.
#[derive(Deserialize)]
#[serde(untagged)]
enum ActorField {
    Id(String),
    Object { id: String },
}

/// Refuses JSON nested deeper than `max` before serde sees it. The body is size-capped,
/// so one linear pass is cheap; strings are skipped so brackets inside them do not count.
pub fn check_depth(body: &[u8], max: usize) -> Result<(), InboxRejection> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(InboxRejection::Malformed(format!(
                        "JSON nested deeper than {max} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses and checks the envelope: `id` and `actor` are http(s) URLs, not ours, and on the
/// same origin; `type` is one string.
pub fn parse(body: &[u8], urls: &Urls) -> Result<InboundActivity, InboxRejection> {
    check_depth(body, MAX_JSON_DEPTH)?;
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| InboxRejection::Malformed(e.to_string()))?;
    let id = parse_http_url(&envelope.id)
        .ok_or_else(|| InboxRejection::Malformed("`id` is not an http(s) URL".into()))?;
    let actor = match envelope.actor {
        ActorField::Id(id) | ActorField::Object { id } => id,
    };
    let actor = parse_http_url(&actor)
        .ok_or_else(|| InboxRejection::Malformed("`actor` is not an http(s) URL".into()))?;
    for url in [&id, &actor] {
        if urls.is_local(url) {
            return Err(InboxRejection::LocalId(url.to_string()));
        }
    }
    if id.origin() != actor.origin() {
        return Err(InboxRejection::Malformed(
            "the activity's id is not on its actor's origin".into(),
        ));
    }
    Ok(InboundActivity {
        kind: ActivityKind::from_type(&envelope.kind),
        type_name: envelope.kind.chars().take(64).collect(),
        id,
        actor,
        object: envelope.object,
        target: envelope.target,
        content: envelope.content,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::settings::FederationSettings;

    fn urls() -> Urls {
        Urls::new(&FederationSettings {
            base_url: "https://bridge.example".into(),
            domain: "bridge.example".into(),
            allow_private_addresses: false,
            signature_window_secs: 3600,
        })
        .expect("urls")
    }

    fn parse_json(value: Value) -> Result<InboundActivity, InboxRejection> {
        parse(&serde_json::to_vec(&value).expect("json"), &urls())
    }

    #[test]
    fn a_follow_is_read() {
        let activity = parse_json(json!({
            "id": "https://r.example/f/1",
            "type": "Follow",
            "actor": "https://r.example/users/bob",
            "object": "https://bridge.example/users/1"
        }))
        .expect("valid");
        assert_eq!(activity.kind, ActivityKind::Follow);
        assert_eq!(
            activity.object_id().map(String::from),
            Some("https://bridge.example/users/1".to_owned())
        );
    }

    #[test]
    fn unknown_types_are_read_as_other() {
        let activity = parse_json(json!({
            "id": "https://r.example/x", "type": "EmojiReact", "actor": "https://r.example/u"
        }))
        .expect("valid");
        assert_eq!(activity.kind, ActivityKind::Other);
    }

    #[test]
    fn bad_envelopes_are_refused() {
        let cases = [
            json!({"type": "Like", "actor": "https://r.example/u"}),
            json!({"id": "https://r.example/x", "type": ["Like"], "actor": "https://r.example/u"}),
            json!({"id": "https://r.example/x", "type": "Like", "actor": ["https://r.example/u"]}),
            json!({"id": "ftp://r.example/x", "type": "Like", "actor": "https://r.example/u"}),
            json!({"id": "https://other.example/x", "type": "Like", "actor": "https://r.example/u"}),
        ];
        for case in cases {
            assert!(
                matches!(parse_json(case.clone()), Err(InboxRejection::Malformed(_))),
                "{case}"
            );
        }
        assert!(matches!(
            parse_json(json!({
                "id": "https://bridge.example/activities/1",
                "type": "Like",
                "actor": "https://bridge.example/users/1"
            })),
            Err(InboxRejection::LocalId(_))
        ));
    }

    #[test]
    fn depth_is_bounded_outside_strings_only() {
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(check_depth(deep.as_bytes(), 32).is_err());
        let shallow = format!(r#"{{"a":"{}"}}"#, "[{".repeat(100));
        assert!(check_depth(shallow.as_bytes(), 32).is_ok());
        let escaped = r#"{"a":"\"[[[[["}"#;
        assert!(check_depth(escaped.as_bytes(), 2).is_ok());
    }
}
