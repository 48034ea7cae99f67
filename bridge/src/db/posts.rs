//! Platform posts and their federation state.

use std::collections::HashMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    AnyConnection,
    schema::{posts, users},
    users::{User, UserId},
};
use crate::error::Error;

/// The bridge's own id of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PostId(pub i64);

impl From<i64> for PostId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

/// Who may see a post on the platform. Only `Public` ever federates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Everyone, listed.
    Public,
    /// Everyone, but kept out of public timelines: not federated (the platform asked for quiet).
    Unlisted,
    /// Followers on the platform only.
    Followers,
    /// Only the author (or a private profile).
    Private,
    /// Only the mentioned people.
    Direct,
}

impl Visibility {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unlisted => "unlisted",
            Self::Followers => "followers",
            Self::Private => "private",
            Self::Direct => "direct",
        }
    }

    /// Reads the stored spelling; unknown values are the most private, the safe side.
    pub fn parse(value: &str) -> Self {
        match value {
            "public" => Self::Public,
            "unlisted" => Self::Unlisted,
            "followers" => Self::Followers,
            "direct" => Self::Direct,
            _ => Self::Private,
        }
    }
}

/// Where a post stands with the fediverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FederationState {
    /// Never sent anywhere.
    Never,
    /// A `Create` went out; it is served as a Note.
    Federated,
    /// The user excluded it before it federated; it never will.
    Excluded,
    /// The user took it back from the fediverse (it stays on the platform).
    Retracted,
    /// Deleted on the platform; served as a Tombstone.
    Deleted,
}

impl FederationState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Federated => "federated",
            Self::Excluded => "excluded",
            Self::Retracted => "retracted",
            Self::Deleted => "deleted",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(value: &str) -> Self {
        match value {
            "federated" => Self::Federated,
            "excluded" => Self::Excluded,
            "retracted" => Self::Retracted,
            "deleted" => Self::Deleted,
            _ => Self::Never,
        }
    }
}

/// Who may reply to or quote a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InteractionPolicy {
    /// Anyone.
    Everyone,
    /// The author's followers.
    Followers,
    /// Only people mentioned in the post.
    Mentioned,
    /// Nobody but the author.
    Nobody,
}

impl InteractionPolicy {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Followers => "followers",
            Self::Mentioned => "mentioned",
            Self::Nobody => "nobody",
        }
    }

    /// Reads the stored spelling; unknown values are the strictest.
    pub fn parse(value: &str) -> Self {
        match value {
            "everyone" => Self::Everyone,
            "followers" => Self::Followers,
            "mentioned" => Self::Mentioned,
            _ => Self::Nobody,
        }
    }
}

/// A media attachment of a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaItem {
    /// Where the file is served (by the platform).
    pub url: String,
    /// MIME type.
    pub media_type: String,
    /// Description for people who cannot see it.
    #[serde(default)]
    pub alt_text: Option<String>,
    /// Pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixels.
    #[serde(default)]
    pub height: Option<u32>,
    /// Bytes.
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// BlurHash preview.
    #[serde(default)]
    pub blurhash: Option<String>,
}

/// Somebody mentioned in a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MentionItem {
    /// `@name@server` as written in the text.
    pub handle: String,
    /// The mentioned actor's URL when known.
    #[serde(default)]
    pub url: Option<String>,
}

/// A stored post.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = posts)]
pub struct Post {
    /// Internal id.
    #[diesel(deserialize_as = i64)]
    pub id: PostId,
    /// The platform's id; appears in object URLs, so it never changes.
    pub platform_post_id: String,
    /// Author.
    #[diesel(deserialize_as = i64)]
    pub user_id: UserId,
    /// Plain text.
    pub text: String,
    /// Stored [`Visibility`].
    pub visibility: String,
    /// Restricted to adults on the platform: never federated.
    pub age_restricted: bool,
    /// Platform post replied to.
    pub reply_to_platform_post_id: Option<String>,
    /// Remote object replied to.
    pub reply_to_url: Option<String>,
    /// Platform post quoted.
    pub quote_of_platform_post_id: Option<String>,
    /// Remote object quoted.
    pub quote_of_url: Option<String>,
    /// JSON list of [`MediaItem`].
    pub media: String,
    /// JSON list of [`MentionItem`].
    pub mentions: String,
    /// JSON list of hashtags (without `#`).
    pub hashtags: String,
    /// Content warning.
    pub content_warning: Option<String>,
    /// Media are sensitive.
    pub sensitive: bool,
    /// Language.
    pub language: Option<String>,
    /// Stored [`InteractionPolicy`] for replies.
    pub reply_policy: String,
    /// Stored [`InteractionPolicy`] for quotes.
    pub quote_policy: String,
    /// Posted through the platform's API.
    pub via_api: bool,
    /// Pinned to the profile (`featured`).
    pub pinned: bool,
    /// Stored [`FederationState`].
    pub federation_state: String,
    /// Platform publication time (ms).
    pub published_at: i64,
    /// Last platform edit (ms).
    pub edited_at: Option<i64>,
    /// When the first `Create` was queued (ms).
    pub federated_at: Option<i64>,
    /// When the platform deleted it (ms).
    pub deleted_at: Option<i64>,
    /// Row creation (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// `occurred_at` of the last platform event applied to it (ms), for ordering.
    pub last_event_at: Option<i64>,
}

impl Post {
    /// Parsed visibility.
    pub fn visibility(&self) -> Visibility {
        Visibility::parse(&self.visibility)
    }

    /// Parsed federation state.
    pub fn federation(&self) -> FederationState {
        FederationState::parse(&self.federation_state)
    }

    /// Media, decoded.
    pub fn media_items(&self) -> Vec<MediaItem> {
        serde_json::from_str(&self.media).unwrap_or_default()
    }

    /// Mentions, decoded.
    pub fn mention_items(&self) -> Vec<MentionItem> {
        serde_json::from_str(&self.mentions).unwrap_or_default()
    }

    /// Hashtags, decoded.
    pub fn hashtag_list(&self) -> Vec<String> {
        serde_json::from_str(&self.hashtags).unwrap_or_default()
    }

    /// Whether the content itself may be public on the fediverse: public, not age
    /// restricted, not deleted, not excluded or retracted. The author's sharing state is
    /// checked separately, by the caller, at send time.
    pub fn content_is_shareable(&self) -> bool {
        shareable_content(self.visibility(), self.age_restricted)
            && self.deleted_at.is_none()
            && matches!(
                self.federation(),
                FederationState::Never | FederationState::Federated
            )
    }
}

/// What the post itself allows: only public posts without an age restriction ever federate.
fn shareable_content(visibility: Visibility, age_restricted: bool) -> bool {
    visibility == Visibility::Public && !age_restricted
}

/// What the platform says about a post (from `post.created` / `post.updated`).
#[derive(Debug, Clone, PartialEq)]
pub struct PostInput {
    /// The platform's id.
    pub platform_post_id: String,
    /// Text.
    pub text: String,
    /// Visibility.
    pub visibility: Visibility,
    /// Age restricted.
    pub age_restricted: bool,
    /// Platform post replied to.
    pub reply_to_platform_post_id: Option<String>,
    /// Remote object replied to.
    pub reply_to_url: Option<String>,
    /// Platform post quoted.
    pub quote_of_platform_post_id: Option<String>,
    /// Remote object quoted.
    pub quote_of_url: Option<String>,
    /// Media.
    pub media: Vec<MediaItem>,
    /// Mentions.
    pub mentions: Vec<MentionItem>,
    /// Hashtags.
    pub hashtags: Vec<String>,
    /// Content warning.
    pub content_warning: Option<String>,
    /// Sensitive media.
    pub sensitive: bool,
    /// Language.
    pub language: Option<String>,
    /// Who may reply.
    pub reply_policy: InteractionPolicy,
    /// Who may quote.
    pub quote_policy: InteractionPolicy,
    /// Posted through the API.
    pub via_api: bool,
    /// Publication time (ms).
    pub published_at: i64,
    /// Edit time (ms).
    pub edited_at: Option<i64>,
}

impl PostInput {
    /// [`Post::content_is_shareable`] of the row this input makes when first stored.
    pub fn content_is_shareable(&self) -> bool {
        shareable_content(self.visibility, self.age_restricted)
    }
}

/// A post stored for the first time, by [`insert`] or [`insert_many`].
#[derive(Debug, Clone, Copy)]
pub struct NewPost<'a> {
    /// Author.
    pub author: UserId,
    /// Content.
    pub input: &'a PostInput,
    /// `Never`, or `Federated` when its `Create` is queued in the same transaction (which
    /// also sets `federated_at`).
    pub state: FederationState,
    /// When the event that brings it happened (ms), if one does: a later, older event is
    /// then ignored.
    pub last_event_at: Option<i64>,
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Storage(e.to_string()))
}

/// Stores posts never stored before, in one statement per few hundred; returns the rows in
/// the order given.
pub fn insert_many(
    conn: &mut AnyConnection,
    new: &[NewPost<'_>],
    now: i64,
) -> Result<Vec<Post>, Error> {
    let encoded = new
        .iter()
        .map(|p| {
            Ok((
                to_json(&p.input.media)?,
                to_json(&p.input.mentions)?,
                to_json(&p.input.hashtags)?,
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut stored: HashMap<String, Post> = HashMap::with_capacity(new.len());
    let per_statement = super::rows_per_statement(25);
    for (posts_chunk, json_chunk) in new.chunks(per_statement).zip(encoded.chunks(per_statement)) {
        let rows: Vec<_> = posts_chunk
            .iter()
            .zip(json_chunk)
            .map(|(p, (media, mentions, hashtags))| {
                let input = p.input;
                let federated_at = (p.state == FederationState::Federated).then_some(now);
                (
                    (
                        posts::platform_post_id.eq(&input.platform_post_id),
                        posts::user_id.eq(p.author.0),
                        posts::text.eq(&input.text),
                        posts::visibility.eq(input.visibility.as_str()),
                        posts::age_restricted.eq(input.age_restricted),
                        posts::reply_to_platform_post_id.eq(&input.reply_to_platform_post_id),
                        posts::reply_to_url.eq(&input.reply_to_url),
                        posts::quote_of_platform_post_id.eq(&input.quote_of_platform_post_id),
                        posts::quote_of_url.eq(&input.quote_of_url),
                        posts::media.eq(media),
                        posts::mentions.eq(mentions),
                        posts::hashtags.eq(hashtags),
                    ),
                    (
                        posts::content_warning.eq(&input.content_warning),
                        posts::sensitive.eq(input.sensitive),
                        posts::language.eq(&input.language),
                        posts::reply_policy.eq(input.reply_policy.as_str()),
                        posts::quote_policy.eq(input.quote_policy.as_str()),
                        posts::via_api.eq(input.via_api),
                        posts::federation_state.eq(p.state.as_str()),
                        posts::published_at.eq(input.published_at),
                        posts::edited_at.eq(input.edited_at),
                        posts::federated_at.eq(federated_at),
                        posts::created_at.eq(now),
                        posts::updated_at.eq(now),
                        posts::last_event_at.eq(p.last_event_at),
                    ),
                )
            })
            .collect();
        let inserted: Vec<Post> = with_backend!(conn, c => diesel::insert_into(posts::table)
            .values(&rows)
            .returning(Post::as_returning())
            .get_results(c))?;
        stored.extend(
            inserted
                .into_iter()
                .map(|post| (post.platform_post_id.clone(), post)),
        );
    }
    // RETURNING promises no order; platform ids are unique, so they match rows up.
    new.iter()
        .map(|p| {
            stored.remove(&p.input.platform_post_id).ok_or_else(|| {
                Error::Storage(format!("post {} was not stored", p.input.platform_post_id))
            })
        })
        .collect()
}

/// Stores a post never stored before; returns the row.
pub fn insert(conn: &mut AnyConnection, new: &NewPost<'_>, now: i64) -> Result<Post, Error> {
    insert_many(conn, std::slice::from_ref(new), now)?
        .pop()
        .ok_or_else(|| Error::Storage("post was not stored".into()))
}

/// Overwrites a stored post with what the platform now says; returns the new row.
pub fn update(
    conn: &mut AnyConnection,
    existing: &Post,
    author: UserId,
    input: &PostInput,
    now: i64,
) -> Result<Post, Error> {
    if existing.user_id != author {
        return Err(Error::Storage(format!(
            "post {} belongs to another author",
            input.platform_post_id
        )));
    }
    let media = to_json(&input.media)?;
    let mentions = to_json(&input.mentions)?;
    let hashtags = to_json(&input.hashtags)?;
    // Through each backend: a `Selectable` RETURNING does not go through `AnyConnection`.
    Ok(
        with_backend!(conn, c => diesel::update(posts::table.find(existing.id.0))
        .set((
            posts::text.eq(&input.text),
            posts::visibility.eq(input.visibility.as_str()),
            posts::age_restricted.eq(input.age_restricted),
            posts::reply_to_platform_post_id.eq(&input.reply_to_platform_post_id),
            posts::reply_to_url.eq(&input.reply_to_url),
            posts::quote_of_platform_post_id.eq(&input.quote_of_platform_post_id),
            posts::quote_of_url.eq(&input.quote_of_url),
            posts::media.eq(&media),
            posts::mentions.eq(&mentions),
            posts::hashtags.eq(&hashtags),
            posts::content_warning.eq(&input.content_warning),
            posts::sensitive.eq(input.sensitive),
            posts::language.eq(&input.language),
            posts::reply_policy.eq(input.reply_policy.as_str()),
            posts::quote_policy.eq(input.quote_policy.as_str()),
            posts::edited_at.eq(input.edited_at.or(Some(now))),
            posts::updated_at.eq(now),
        ))
        .returning(Post::as_returning())
        .get_result(c))?,
    )
}

/// Inserts a post (never federated), or updates it when it exists; returns the stored row
/// and whether it is new.
pub fn upsert(
    conn: &mut AnyConnection,
    author: UserId,
    input: &PostInput,
    now: i64,
) -> Result<(Post, bool), Error> {
    match find_by_platform_id(conn, &input.platform_post_id)? {
        Some(existing) => Ok((update(conn, &existing, author, input, now)?, false)),
        None => {
            let new = NewPost {
                author,
                input,
                state: FederationState::Never,
                last_event_at: None,
            };
            Ok((insert(conn, &new, now)?, true))
        }
    }
}

/// The post with this platform id.
pub fn find_by_platform_id(conn: &mut AnyConnection, id: &str) -> Result<Option<Post>, Error> {
    Ok(posts::table
        .filter(posts::platform_post_id.eq(id))
        .select(Post::as_select())
        .first(conn)
        .optional()?)
}

/// The post with this platform id and its author, in one query.
pub fn find_with_author(conn: &mut AnyConnection, id: &str) -> Result<Option<(Post, User)>, Error> {
    Ok(posts::table
        .inner_join(users::table)
        .filter(posts::platform_post_id.eq(id))
        .select((Post::as_select(), User::as_select()))
        .first(conn)
        .optional()?)
}

/// Which of these platform post ids are stored, in one query.
pub fn existing_platform_ids(conn: &mut AnyConnection, ids: &[&str]) -> Result<Vec<String>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Planned per run: a generic plan settled on an empty table stays a sequential scan.
    super::replanned::load(
        conn,
        posts::table
            .filter(posts::platform_post_id.eq_any(ids))
            .select(posts::platform_post_id),
    )
}

/// The post with this internal id.
pub fn find(conn: &mut AnyConnection, id: PostId) -> Result<Option<Post>, Error> {
    Ok(posts::table
        .find(id.0)
        .select(Post::as_select())
        .first(conn)
        .optional()?)
}

/// Changes a post's federation state.
pub fn set_federation_state(
    conn: &mut AnyConnection,
    id: PostId,
    state: FederationState,
    now: i64,
) -> Result<(), Error> {
    let query = diesel::update(posts::table.find(id.0));
    if state == FederationState::Federated {
        query
            .set((
                posts::federation_state.eq(state.as_str()),
                posts::federated_at.eq(now),
                posts::updated_at.eq(now),
            ))
            .execute(conn)?;
    } else {
        query
            .set((
                posts::federation_state.eq(state.as_str()),
                posts::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Marks a post deleted on the platform.
pub fn mark_deleted(conn: &mut AnyConnection, id: PostId, now: i64) -> Result<(), Error> {
    diesel::update(posts::table.find(id.0))
        .set((posts::deleted_at.eq(now), posts::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// Records `occurred_at` of the platform event just applied to a post.
pub fn set_last_event_at(conn: &mut AnyConnection, id: PostId, at: i64) -> Result<(), Error> {
    diesel::update(posts::table.find(id.0))
        .set(posts::last_event_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// Remembers that the platform deleted a post the bridge never heard of, without any of
/// its content: its `post.created`, retried after the deletion, must not publish it.
pub fn insert_tombstone(
    conn: &mut AnyConnection,
    author: UserId,
    platform_post_id: &str,
    occurred: i64,
    now: i64,
) -> Result<(), Error> {
    diesel::insert_into(posts::table)
        .values((
            posts::platform_post_id.eq(platform_post_id),
            posts::user_id.eq(author.0),
            posts::visibility.eq(Visibility::Private.as_str()),
            posts::federation_state.eq(FederationState::Deleted.as_str()),
            posts::published_at.eq(occurred),
            posts::deleted_at.eq(now),
            posts::last_event_at.eq(occurred),
            posts::created_at.eq(now),
            posts::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Pins or unpins a post.
pub fn set_pinned(conn: &mut AnyConnection, id: PostId, pinned: bool) -> Result<(), Error> {
    diesel::update(posts::table.find(id.0))
        .set(posts::pinned.eq(pinned))
        .execute(conn)?;
    Ok(())
}

/// A page of the user's federated posts, newest first, published strictly before `before`.
pub fn federated_page(
    conn: &mut AnyConnection,
    user: UserId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Post>, Error> {
    let mut query = posts::table
        .filter(posts::user_id.eq(user.0))
        .filter(posts::federation_state.eq(FederationState::Federated.as_str()))
        .select(Post::as_select())
        .order((posts::published_at.desc(), posts::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(posts::published_at.lt(before));
    }
    Ok(query.load(conn)?)
}

/// How many of the user's posts are federated.
pub fn count_federated(conn: &mut AnyConnection, user: UserId) -> Result<i64, Error> {
    Ok(posts::table
        .filter(posts::user_id.eq(user.0))
        .filter(posts::federation_state.eq(FederationState::Federated.as_str()))
        .count()
        .get_result(conn)?)
}

/// Every federated post of all sharing users (NodeInfo `localPosts`).
pub fn count_all_federated(conn: &mut AnyConnection) -> Result<i64, Error> {
    Ok(posts::table
        .filter(posts::federation_state.eq(FederationState::Federated.as_str()))
        .count()
        .get_result(conn)?)
}

/// The user's pinned, federated posts, newest first.
pub fn featured(conn: &mut AnyConnection, user: UserId) -> Result<Vec<Post>, Error> {
    Ok(posts::table
        .filter(posts::user_id.eq(user.0))
        .filter(posts::pinned.eq(true))
        .filter(posts::federation_state.eq(FederationState::Federated.as_str()))
        .select(Post::as_select())
        .order(posts::published_at.desc())
        .limit(20)
        .load(conn)?)
}

/// Every federated post of a user (for opt-out).
pub fn all_federated(conn: &mut AnyConnection, user: UserId) -> Result<Vec<Post>, Error> {
    Ok(posts::table
        .filter(posts::user_id.eq(user.0))
        .filter(posts::federation_state.eq(FederationState::Federated.as_str()))
        .select(Post::as_select())
        .load(conn)?)
}
