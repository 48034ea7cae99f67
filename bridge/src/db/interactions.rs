//! What remote actors did to local users and posts: likes, boosts, and replies, quotes and
//! mentions, kept so that a later `Undo`, `Update` or `Delete` can find what it refers to.
//!
//! `ap_id` is unique: the remote activity id for likes and boosts, the remote object id for
//! content (with a `#to=` suffix per extra addressee, since one Note can reply to one user
//! and mention another). `object_ap_id` is our Note for reactions and the remote Note for
//! content.

use diesel::prelude::*;

use super::{
    AnyConnection, posts::PostId, remote_actors::RemoteActorId, schema::remote_interactions,
    users::UserId,
};
use crate::error::Error;

/// What a remote actor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InteractionKind {
    /// `Like` of a post.
    Like,
    /// `Announce` of a post.
    Boost,
    /// A Note replying to a post.
    Reply,
    /// A Note quoting a post.
    Quote,
    /// A Note mentioning a user.
    Mention,
}

impl InteractionKind {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Like => "like",
            Self::Boost => "boost",
            Self::Reply => "reply",
            Self::Quote => "quote",
            Self::Mention => "mention",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "like" => Self::Like,
            "boost" => Self::Boost,
            "reply" => Self::Reply,
            "quote" => Self::Quote,
            "mention" => Self::Mention,
            _ => return None,
        })
    }

    /// Whether it carries content (and can be updated or deleted) rather than being a
    /// reaction (which can be undone).
    pub fn is_content(self) -> bool {
        matches!(self, Self::Reply | Self::Quote | Self::Mention)
    }

    const CONTENT: [&'static str; 3] = ["reply", "quote", "mention"];
}

/// A stored interaction.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = remote_interactions)]
pub struct Interaction {
    /// Row id.
    pub id: i64,
    /// Unique key (see the module docs).
    pub ap_id: String,
    /// Stored [`InteractionKind`].
    pub kind: String,
    /// Who did it.
    #[diesel(deserialize_as = i64)]
    pub remote_actor_id: RemoteActorId,
    /// The local post concerned, if any (mentions have none).
    pub post_id: Option<i64>,
    /// The local user concerned.
    #[diesel(deserialize_as = i64)]
    pub user_id: UserId,
    /// Our Note (reactions) or the remote Note (content).
    pub object_ap_id: Option<String>,
    /// When it arrived (ms).
    pub created_at: i64,
    /// Last remote edit (ms).
    pub updated_at: Option<i64>,
    /// When it was undone or deleted (ms).
    pub undone_at: Option<i64>,
}

impl Interaction {
    /// Parsed kind (`None` only for rows written by a newer version).
    pub fn kind(&self) -> Option<InteractionKind> {
        InteractionKind::parse(&self.kind)
    }

    /// The local post, typed.
    pub fn post(&self) -> Option<PostId> {
        self.post_id.map(PostId)
    }
}

/// Values of a new interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInteraction<'a> {
    /// Unique key.
    pub ap_id: &'a str,
    /// Kind.
    pub kind: InteractionKind,
    /// Who.
    pub remote_actor: RemoteActorId,
    /// Which local post.
    pub post: Option<PostId>,
    /// Which local user.
    pub user: UserId,
    /// Our Note or the remote Note.
    pub object_ap_id: Option<&'a str>,
}

/// Stores an interaction; `false` when one with the same `ap_id` exists already, or when it
/// is a like (boost) and the actor's like (boost) of that post is in effect already (a
/// partial unique index).
pub fn insert(conn: &mut AnyConnection, new: &NewInteraction<'_>, now: i64) -> Result<bool, Error> {
    let values = (
        remote_interactions::ap_id.eq(new.ap_id),
        remote_interactions::kind.eq(new.kind.as_str()),
        remote_interactions::remote_actor_id.eq(new.remote_actor.0),
        remote_interactions::post_id.eq(new.post.map(|p| p.0)),
        remote_interactions::user_id.eq(new.user.0),
        remote_interactions::object_ap_id.eq(new.object_ap_id),
        remote_interactions::created_at.eq(now),
    );
    let inserted = with_backend!(conn, c => diesel::insert_into(remote_interactions::table)
        .values(values)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// The interaction with this key.
pub fn find_by_ap_id(conn: &mut AnyConnection, ap_id: &str) -> Result<Option<Interaction>, Error> {
    Ok(remote_interactions::table
        .filter(remote_interactions::ap_id.eq(ap_id))
        .select(Interaction::as_select())
        .first(conn)
        .optional()?)
}

/// Replies, quotes and mentions made by `actor` with its object `object_ap_id`, not deleted.
pub fn content_for_object(
    conn: &mut AnyConnection,
    object_ap_id: &str,
    actor: RemoteActorId,
) -> Result<Vec<Interaction>, Error> {
    Ok(remote_interactions::table
        .filter(remote_interactions::object_ap_id.eq(object_ap_id))
        .filter(remote_interactions::remote_actor_id.eq(actor.0))
        .filter(remote_interactions::kind.eq_any(InteractionKind::CONTENT))
        .filter(remote_interactions::undone_at.is_null())
        .order(remote_interactions::id.asc())
        .select(Interaction::as_select())
        .load(conn)?)
}

/// Marks an interaction undone (or its content deleted); `false` if it already was.
pub fn mark_undone(conn: &mut AnyConnection, id: i64, now: i64) -> Result<bool, Error> {
    let updated = diesel::update(
        remote_interactions::table
            .find(id)
            .filter(remote_interactions::undone_at.is_null()),
    )
    .set(remote_interactions::undone_at.eq(now))
    .execute(conn)?;
    Ok(updated == 1)
}

/// Records a remote edit of the content.
pub fn mark_updated(conn: &mut AnyConnection, id: i64, now: i64) -> Result<(), Error> {
    diesel::update(remote_interactions::table.find(id))
        .set(remote_interactions::updated_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// How many interactions of `kind` on `post` are in effect.
pub fn count_active(
    conn: &mut AnyConnection,
    kind: InteractionKind,
    post: PostId,
) -> Result<i64, Error> {
    Ok(remote_interactions::table
        .filter(remote_interactions::kind.eq(kind.as_str()))
        .filter(remote_interactions::post_id.eq(post.0))
        .filter(remote_interactions::undone_at.is_null())
        .count()
        .get_result(conn)?)
}
