//! Remote actors following local users.

use std::collections::HashMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    AnyConnection,
    remote_actors::{RemoteActor, RemoteActorId},
    schema::{follows, remote_actors},
    users::UserId,
};
use crate::error::Error;

/// Whether a follow is in effect or waits for the user's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FollowState {
    /// Waiting for approval.
    Pending,
    /// In effect: the follower receives posts.
    Accepted,
}

impl FollowState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
        }
    }
}

/// A stored follow.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = follows)]
pub struct Follow {
    /// Row id.
    pub id: i64,
    /// Followed user.
    #[diesel(deserialize_as = i64)]
    pub user_id: UserId,
    /// Follower.
    #[diesel(deserialize_as = i64)]
    pub remote_actor_id: RemoteActorId,
    /// `pending` or `accepted`.
    pub state: String,
    /// Id of the remote `Follow` activity (needed to Accept/Reject it).
    pub follow_activity_id: String,
    /// When it arrived (ms).
    pub created_at: i64,
    /// When it was accepted (ms).
    pub accepted_at: Option<i64>,
}

impl Follow {
    /// Whether it is in effect.
    pub fn is_accepted(&self) -> bool {
        self.state == FollowState::Accepted.as_str()
    }
}

diesel::define_sql_function! {
    /// SQL `COALESCE` of two nullable times.
    fn coalesce(
        first: diesel::sql_types::Nullable<diesel::sql_types::BigInt>,
        second: diesel::sql_types::Nullable<diesel::sql_types::BigInt>,
    ) -> diesel::sql_types::Nullable<diesel::sql_types::BigInt>;
}

/// Records a follow (or refreshes its activity id); returns it and whether it is new.
///
/// The insert comes first and gives way to an existing row (`ON CONFLICT DO NOTHING`), so two
/// Follows of the same pair arriving together never both insert; the loser then refreshes
/// the row the winner committed.
pub fn upsert(
    conn: &mut AnyConnection,
    user: UserId,
    follower: RemoteActorId,
    follow_activity_id: &str,
    state: FollowState,
    now: i64,
) -> Result<(Follow, bool), Error> {
    let accepted_at = (state == FollowState::Accepted).then_some(now);
    // The follower's host, copied from its actor (see `from_host_at_least`).
    let host = remote_actors::table
        .find(follower.0)
        .select(remote_actors::host)
        .single_value()
        .assume_not_null();
    let values = (
        follows::user_id.eq(user.0),
        follows::remote_actor_id.eq(follower.0),
        follows::host.eq(host),
        follows::state.eq(state.as_str()),
        follows::follow_activity_id.eq(follow_activity_id),
        follows::created_at.eq(now),
        follows::accepted_at.eq(accepted_at),
    );
    let inserted = with_backend!(conn, c => diesel::insert_into(follows::table)
        .values(values)
        .on_conflict((follows::user_id, follows::remote_actor_id))
        .do_nothing()
        .returning(Follow::as_returning())
        .get_result(c)
        .optional())?;
    if let Some(follow) = inserted {
        return Ok((follow, true));
    }
    let pair = follows::table
        .filter(follows::user_id.eq(user.0))
        .filter(follows::remote_actor_id.eq(follower.0));
    // A repeated Follow from an accepted follower stays accepted; a pending one becomes
    // accepted only when the user no longer approves followers by hand.
    let refreshed = match state {
        FollowState::Pending => with_backend!(conn, c => diesel::update(pair)
            .set(follows::follow_activity_id.eq(follow_activity_id))
            .returning(Follow::as_returning())
            .get_result(c)
            .optional())?,
        FollowState::Accepted => with_backend!(conn, c => diesel::update(pair)
            .set((
                follows::follow_activity_id.eq(follow_activity_id),
                follows::state.eq(FollowState::Accepted.as_str()),
                follows::accepted_at.eq(coalesce(follows::accepted_at, accepted_at)),
            ))
            .returning(Follow::as_returning())
            .get_result(c)
            .optional())?,
    };
    let follow = refreshed.ok_or_else(|| Error::Storage("follow vanished".into()))?;
    Ok((follow, false))
}

/// The follow of `user` by `follower`.
pub fn find(
    conn: &mut AnyConnection,
    user: UserId,
    follower: RemoteActorId,
) -> Result<Option<Follow>, Error> {
    Ok(follows::table
        .filter(follows::user_id.eq(user.0))
        .filter(follows::remote_actor_id.eq(follower.0))
        .select(Follow::as_select())
        .first(conn)
        .optional()?)
}

/// The follow created by the remote `Follow` activity `follow_activity_id`.
pub fn find_by_activity_id(
    conn: &mut AnyConnection,
    follow_activity_id: &str,
) -> Result<Option<Follow>, Error> {
    Ok(follows::table
        .filter(follows::follow_activity_id.eq(follow_activity_id))
        .select(Follow::as_select())
        .first(conn)
        .optional()?)
}

/// Accepts a pending follow.
pub fn accept(conn: &mut AnyConnection, id: i64, now: i64) -> Result<(), Error> {
    diesel::update(follows::table.find(id))
        .set((
            follows::state.eq(FollowState::Accepted.as_str()),
            follows::accepted_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes a follow; returns whether there was one.
pub fn remove(
    conn: &mut AnyConnection,
    user: UserId,
    follower: RemoteActorId,
) -> Result<bool, Error> {
    let removed = diesel::delete(
        follows::table
            .filter(follows::user_id.eq(user.0))
            .filter(follows::remote_actor_id.eq(follower.0)),
    )
    .execute(conn)?;
    Ok(removed > 0)
}

/// Removes every follow of `user` (opt-out).
pub fn remove_all(conn: &mut AnyConnection, user: UserId) -> Result<usize, Error> {
    Ok(diesel::delete(follows::table.filter(follows::user_id.eq(user.0))).execute(conn)?)
}

/// Every follow by `follower`, of any user (a remote actor was deleted or moved).
pub fn by_follower(
    conn: &mut AnyConnection,
    follower: RemoteActorId,
) -> Result<Vec<Follow>, Error> {
    Ok(follows::table
        .filter(follows::remote_actor_id.eq(follower.0))
        .select(Follow::as_select())
        .load(conn)?)
}

/// The user's followers with their actors, in `state`, oldest first.
pub fn followers(
    conn: &mut AnyConnection,
    user: UserId,
    state: FollowState,
) -> Result<Vec<(Follow, RemoteActor)>, Error> {
    Ok(follows::table
        .inner_join(remote_actors::table)
        .filter(follows::user_id.eq(user.0))
        .filter(follows::state.eq(state.as_str()))
        .order(follows::id.asc())
        .select((Follow::as_select(), RemoteActor::as_select()))
        .load(conn)?)
}

/// Whether at least `n` follows (pending or accepted) come from actors on `host`: of `user`,
/// or of any local user. Reads at most `n` entries of the `(host, user_id)` index.
pub fn from_host_at_least(
    conn: &mut AnyConnection,
    host: &str,
    user: Option<UserId>,
    n: u64,
) -> Result<bool, Error> {
    if n == 0 {
        return Ok(true);
    }
    let skip = i64::try_from(n - 1).unwrap_or(i64::MAX);
    // Only indexed columns are read, so the index alone can answer.
    let from_host = follows::table
        .filter(follows::host.eq(host))
        .select(follows::user_id);
    let nth: Option<i64> = match user {
        Some(user) => from_host
            .filter(follows::user_id.eq(user.0))
            .offset(skip)
            .limit(1)
            .first(conn)
            .optional()?,
        None => from_host.offset(skip).limit(1).first(conn).optional()?,
    };
    Ok(nth.is_some())
}

/// [`from_host_at_least`] for `user` and for every local user at once, in one statement:
/// whether at least `per_user` follows of `user` and at least `per_host` follows in all
/// come from `host` (both bounds at least 1).
pub fn from_host_at_least_both(
    conn: &mut AnyConnection,
    host: &str,
    user: UserId,
    per_user: u64,
    per_host: u64,
) -> Result<(bool, bool), Error> {
    let skip = |n: u64| i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
    let from_host = || {
        follows::table
            .filter(follows::host.eq(host))
            .select(follows::user_id)
    };
    Ok(diesel::select((
        diesel::dsl::exists(
            from_host()
                .filter(follows::user_id.eq(user.0))
                .offset(skip(per_user))
                .limit(1),
        ),
        diesel::dsl::exists(from_host().offset(skip(per_host)).limit(1)),
    ))
    .get_result(conn)?)
}

/// How many accepted followers the user has.
pub fn count_accepted(conn: &mut AnyConnection, user: UserId) -> Result<i64, Error> {
    Ok(follows::table
        .filter(follows::user_id.eq(user.0))
        .filter(follows::state.eq(FollowState::Accepted.as_str()))
        .count()
        .get_result(conn)?)
}

/// Distinct delivery inboxes (shared inbox first) of the user's accepted followers.
pub fn follower_inboxes(conn: &mut AnyConnection, user: UserId) -> Result<Vec<String>, Error> {
    Ok(follower_inboxes_of(conn, &[user])?
        .remove(&user)
        .unwrap_or_default())
}

/// [`follower_inboxes`] of several users in one query; users without followers are absent.
pub fn follower_inboxes_of(
    conn: &mut AnyConnection,
    users: &[UserId],
) -> Result<HashMap<UserId, Vec<String>>, Error> {
    if users.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
    let rows: Vec<(i64, String, Option<String>)> = follows::table
        .inner_join(remote_actors::table)
        .filter(follows::user_id.eq_any(ids))
        .filter(follows::state.eq(FollowState::Accepted.as_str()))
        .filter(remote_actors::deleted_at.is_null())
        .select((
            follows::user_id,
            remote_actors::inbox,
            remote_actors::shared_inbox,
        ))
        .load(conn)?;
    let mut inboxes: HashMap<UserId, Vec<String>> = HashMap::new();
    for (user, inbox, shared) in rows {
        inboxes
            .entry(UserId(user))
            .or_default()
            .push(shared.unwrap_or(inbox));
    }
    for list in inboxes.values_mut() {
        list.sort();
        list.dedup();
    }
    Ok(inboxes)
}
