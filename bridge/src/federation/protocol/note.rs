//! `Note` objects for posts, and the `Tombstone` that replaces them.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{PUBLIC, context::Context, rfc3339};
use crate::{
    db::{
        posts::{InteractionPolicy, Post},
        users::User,
    },
    federation::{
        content::{self, Tag},
        urls::Urls,
    },
};

/// A media attachment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Always `Document` (Mastodon picks the kind from the media type).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// MIME type.
    pub media_type: String,
    /// File URL.
    pub url: String,
    /// Alt text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Preview.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blurhash: Option<String>,
}

/// The replies collection stub (remote servers page through it).
#[derive(Debug, Clone, Serialize)]
pub struct RepliesRef {
    /// Collection URL.
    pub id: String,
    /// Always `Collection`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A post as ActivityStreams.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// Context; absent when embedded in an activity.
    #[serde(rename = "@context", skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// Note URL.
    pub id: String,
    /// Always `Note`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Author actor.
    pub attributed_to: String,
    /// HTML.
    pub content: String,
    /// HTML by language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_map: Option<BTreeMap<String, String>>,
    /// Content warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Hidden behind a warning.
    pub sensitive: bool,
    /// Publication.
    pub published: String,
    /// Last edit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Human-readable page.
    pub url: String,
    /// Audience.
    pub to: Vec<String>,
    /// Secondary audience.
    pub cc: Vec<String>,
    /// Replied-to object.
    pub in_reply_to: Option<String>,
    /// Mentions and hashtags.
    pub tag: Vec<Tag>,
    /// Media.
    pub attachment: Vec<Attachment>,
    /// Replies collection.
    pub replies: RepliesRef,
    /// Quoted object (FEP-044f).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// Quoted object (older Mastodon/Fedibird readers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote_url: Option<String>,
    /// Quoted object (Misskey family).
    #[serde(rename = "_misskey_quote", skip_serializing_if = "Option::is_none")]
    pub misskey_quote: Option<String>,
    /// Who may reply and quote (GoToSocial / FEP-044f).
    pub interaction_policy: Value,
}

/// Where a Note's reply and quote point, resolved by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoteLinks {
    /// Replied-to object URL.
    pub in_reply_to: Option<String>,
    /// Quoted object URL.
    pub quote: Option<String>,
}

fn audience(policy: InteractionPolicy, author: &str, followers: &str) -> Vec<String> {
    match policy {
        InteractionPolicy::Everyone => vec![PUBLIC.to_owned()],
        InteractionPolicy::Followers => vec![followers.to_owned(), author.to_owned()],
        InteractionPolicy::Mentioned | InteractionPolicy::Nobody => vec![author.to_owned()],
    }
}

impl Note {
    /// Builds the Note of a post by `author`.
    pub fn from_post(post: &Post, author: &User, links: NoteLinks, urls: &Urls) -> Self {
        let uid = &author.platform_user_id;
        let actor = urls.actor(uid).to_string();
        let followers = urls.followers(uid).to_string();
        let rendered = content::render_post(
            &post.text,
            &post.mention_items(),
            &post.hashtag_list(),
            urls,
        );
        let mut cc = vec![followers.clone()];
        for tag in &rendered.tags {
            if let Tag::Mention { href, .. } = tag
                && !cc.contains(href)
            {
                cc.push(href.clone());
            }
        }
        let id = urls.note(&post.platform_post_id).to_string();
        let content_map = post
            .language
            .clone()
            .or_else(|| author.language.clone())
            .map(|lang| BTreeMap::from([(lang, rendered.html.clone())]));
        let reply_policy = InteractionPolicy::parse(&post.reply_policy);
        let quote_policy = InteractionPolicy::parse(&post.quote_policy);
        Self {
            context: Some(Context),
            id: id.clone(),
            kind: "Note",
            attributed_to: actor.clone(),
            content: rendered.html,
            content_map,
            summary: post
                .content_warning
                .clone()
                .filter(|cw| !cw.trim().is_empty()),
            sensitive: post.sensitive
                || post
                    .content_warning
                    .as_deref()
                    .is_some_and(|cw| !cw.trim().is_empty()),
            published: rfc3339(post.published_at),
            updated: post.edited_at.map(rfc3339),
            url: id.clone(),
            to: vec![PUBLIC.to_owned()],
            cc,
            in_reply_to: links.in_reply_to,
            tag: rendered.tags,
            attachment: post
                .media_items()
                .into_iter()
                .map(|m| Attachment {
                    kind: "Document",
                    media_type: m.media_type,
                    url: m.url,
                    name: m.alt_text,
                    width: m.width,
                    height: m.height,
                    blurhash: m.blurhash,
                })
                .collect(),
            replies: RepliesRef {
                id: urls.replies(&post.platform_post_id).to_string(),
                kind: "Collection",
            },
            quote: links.quote.clone(),
            quote_url: links.quote.clone(),
            misskey_quote: links.quote,
            interaction_policy: json!({
                "canReply": { "automaticApproval": audience(reply_policy, &actor, &followers) },
                "canQuote": { "automaticApproval": audience(quote_policy, &actor, &followers) },
            }),
        }
    }

    /// The same Note without `@context`, for embedding in an activity.
    pub fn embedded(mut self) -> Self {
        self.context = None;
        self
    }
}

/// What a deleted object becomes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    /// Context; absent when embedded.
    #[serde(rename = "@context", skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// The former object's URL.
    pub id: String,
    /// Always `Tombstone`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub former_type: Option<&'static str>,
    /// When it was deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

impl Tombstone {
    /// A standalone Tombstone (served with 410).
    pub fn new(id: String, former_type: &'static str, deleted_at: Option<i64>) -> Self {
        Self {
            context: Some(Context),
            id,
            kind: "Tombstone",
            former_type: Some(former_type),
            deleted: deleted_at.map(rfc3339),
        }
    }

    /// The same Tombstone without `@context`, for embedding in a Delete.
    pub fn embedded(mut self) -> Self {
        self.context = None;
        self
    }
}
