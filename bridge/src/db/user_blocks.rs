//! Accounts and servers a user blocked: they may not follow or reach that user.

use diesel::prelude::*;

use super::{
    AnyConnection,
    schema::{activities, remote_actors, user_blocks},
    users::UserId,
};
use crate::{error::Error, moderation::BlockDomain};

/// What a block names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockTarget {
    /// One remote actor, by its URL.
    Actor(String),
    /// Every account on a server and its subdomains, in the one form server blocks are
    /// stored and matched in too (lowercase punycode, no trailing dot), so that no
    /// spelling of a domain escapes its block.
    Domain(BlockDomain),
}

impl BlockTarget {
    /// Stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Actor(_) => "actor",
            Self::Domain(_) => "domain",
        }
    }

    /// The actor URL or the domain, as stored.
    pub fn value(&self) -> &str {
        match self {
            Self::Actor(v) => v,
            Self::Domain(v) => v.as_str(),
        }
    }
}

/// A stored block.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = user_blocks)]
pub struct UserBlock {
    /// Row id.
    pub id: i64,
    /// The blocking user.
    pub user_id: i64,
    /// `actor` or `domain`.
    pub target_kind: String,
    /// Actor URL or host.
    pub target: String,
    /// When (ms).
    pub created_at: i64,
}

/// Adds a block; returns `false` when it already existed.
pub fn add(
    conn: &mut AnyConnection,
    user: UserId,
    target: &BlockTarget,
    now: i64,
) -> Result<bool, Error> {
    let values = (
        user_blocks::user_id.eq(user.0),
        user_blocks::target_kind.eq(target.kind()),
        user_blocks::target.eq(target.value()),
        user_blocks::created_at.eq(now),
    );
    let added = with_backend!(conn, c => diesel::insert_into(user_blocks::table)
        .values(values)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(added > 0)
}

/// Removes a block; returns whether there was one.
pub fn remove(conn: &mut AnyConnection, user: UserId, target: &BlockTarget) -> Result<bool, Error> {
    let removed = diesel::delete(
        user_blocks::table
            .filter(user_blocks::user_id.eq(user.0))
            .filter(user_blocks::target_kind.eq(target.kind()))
            .filter(user_blocks::target.eq(target.value())),
    )
    .execute(conn)?;
    Ok(removed > 0)
}

/// The user's blocks, oldest first.
pub fn list(conn: &mut AnyConnection, user: UserId) -> Result<Vec<UserBlock>, Error> {
    Ok(user_blocks::table
        .filter(user_blocks::user_id.eq(user.0))
        .order(user_blocks::id.asc())
        .select(UserBlock::as_select())
        .load(conn)?)
}

/// The domains each of `users` blocks: (user, domain), domains in their stored form.
pub fn blocked_domains(
    conn: &mut AnyConnection,
    users: &[i64],
) -> Result<Vec<(i64, String)>, Error> {
    let mut rows = Vec::new();
    // Chunks keep each statement under SQLite's bound-parameter limit.
    for chunk in users.chunks(500) {
        rows.extend(
            user_blocks::table
                .filter(user_blocks::user_id.eq_any(chunk))
                .filter(user_blocks::target_kind.eq("domain"))
                .select((user_blocks::user_id, user_blocks::target))
                .load::<(i64, String)>(conn)?,
        );
    }
    Ok(rows)
}

/// The personal inboxes of the known accounts each of `users` blocks: (user, inbox).
/// Blocked accounts the bridge never saw have no inbox anything could be queued for.
pub fn blocked_actor_inboxes(
    conn: &mut AnyConnection,
    users: &[i64],
) -> Result<Vec<(i64, String)>, Error> {
    let mut rows = Vec::new();
    for chunk in users.chunks(500) {
        rows.extend(
            user_blocks::table
                .inner_join(remote_actors::table.on(remote_actors::ap_id.eq(user_blocks::target)))
                .filter(user_blocks::user_id.eq_any(chunk))
                .filter(user_blocks::target_kind.eq("actor"))
                .select((user_blocks::user_id, remote_actors::inbox))
                .load::<(i64, String)>(conn)?,
        );
    }
    Ok(rows)
}

/// The id of the latest `Block` activity `user` sent to `actor_ap_id` (needed to undo it).
pub fn last_block_activity(
    conn: &mut AnyConnection,
    user: UserId,
    actor_ap_id: &str,
) -> Result<Option<String>, Error> {
    Ok(activities::table
        .filter(activities::user_id.eq(user.0))
        .filter(activities::kind.eq("Block"))
        .filter(activities::object_ap_id.eq(actor_ap_id))
        .order(activities::id.desc())
        .select(activities::ap_id)
        .first(conn)
        .optional()?)
}
