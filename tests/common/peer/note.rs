//! Posts and references to objects, shaped to accept what Mastodon-compatible servers send.

use activitypub_federation::protocol::helpers::deserialize_one_or_many;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

/// `as:Public`, the audience of public posts.
pub const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";

/// Post types Mastodon displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoteKind {
    /// A status.
    Note,
    /// A long post.
    Article,
    /// A page.
    Page,
    /// A poll.
    Question,
}

/// A post, tolerant of Mastodon's fields (summary, sensitive, attachment, tag, contentMap,
/// url, inReplyTo, quote fields, …); anything not modelled stays in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// `type`
    #[serde(rename = "type")]
    pub kind: NoteKind,
    /// `id`
    pub id: Url,
    /// `attributedTo`: must be the activity's actor.
    pub attributed_to: Url,
    /// `to`
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub to: Vec<Url>,
    /// `cc`
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub cc: Vec<Url>,
    /// `content` (HTML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// `contentMap`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_map: Option<Map<String, Value>>,
    /// `summary` (content warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// `sensitive`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive: Option<bool>,
    /// `inReplyTo`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<Url>,
    /// `published`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// `updated`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// `url`: a string, a Link or a list of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Value>,
    /// `attachment`
    #[serde(
        default,
        deserialize_with = "deserialize_one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub attachment: Vec<Value>,
    /// `tag` (Mention, Hashtag, Emoji).
    #[serde(
        default,
        deserialize_with = "deserialize_one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tag: Vec<Value>,
    /// Every other field (`quoteUrl`, `_misskey_quote`, `conversation`, `replies`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A reference to an object: its URL, or the object embedded (only its `id` is read).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ObjectOrId {
    /// Just the URL.
    Id(Url),
    /// An embedded object.
    Object {
        /// The object's `id`.
        id: Url,
        /// The rest of the object.
        #[serde(flatten)]
        rest: Map<String, Value>,
    },
}

impl ObjectOrId {
    /// The referenced object's id.
    pub fn id(&self) -> &Url {
        match self {
            Self::Id(id) | Self::Object { id, .. } => id,
        }
    }
}
