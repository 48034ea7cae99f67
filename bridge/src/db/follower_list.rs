//! Reading a user's followers the way the user manages them: in pages, by actor, by server.

use diesel::prelude::*;

use super::{
    AnyConnection,
    follows::{Follow, FollowState},
    remote_actors::RemoteActor,
    schema::{follows, remote_actors},
    users::UserId,
};
use crate::error::Error;

/// Up to `limit` of the user's follows in `state` with their actors, oldest first, after the
/// follow row id `after` (a cursor).
pub fn page(
    conn: &mut AnyConnection,
    user: UserId,
    state: FollowState,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<(Follow, RemoteActor)>, Error> {
    Ok(follows::table
        .inner_join(remote_actors::table)
        .filter(follows::user_id.eq(user.0))
        .filter(follows::state.eq(state.as_str()))
        .filter(follows::id.gt(after.unwrap_or(0)))
        .order(follows::id.asc())
        .limit(limit)
        .select((Follow::as_select(), RemoteActor::as_select()))
        .load(conn)?)
}

/// The follow (pending or accepted) of `user` by the actor with URL `actor_ap_id`.
pub fn by_actor_url(
    conn: &mut AnyConnection,
    user: UserId,
    actor_ap_id: &str,
) -> Result<Option<(Follow, RemoteActor)>, Error> {
    Ok(follows::table
        .inner_join(remote_actors::table)
        .filter(follows::user_id.eq(user.0))
        .filter(remote_actors::ap_id.eq(actor_ap_id))
        .select((Follow::as_select(), RemoteActor::as_select()))
        .first(conn)
        .optional()?)
}

/// Every follow (pending or accepted) of `user` by actors on `domain` or one of its
/// subdomains: what the user's block of a server severs. `domain` is in its stored
/// (normalized) form.
pub fn on_domain(
    conn: &mut AnyConnection,
    user: UserId,
    domain: &str,
) -> Result<Vec<(Follow, RemoteActor)>, Error> {
    covered(conn, Some(user), domain)
}

/// Every follow (pending or accepted), of any user, by actors on `domain` or one of its
/// subdomains: what a server block severs.
pub fn from_domain(
    conn: &mut AnyConnection,
    domain: &str,
) -> Result<Vec<(Follow, RemoteActor)>, Error> {
    covered(conn, None, domain)
}

/// Follows (of `user`, or of anyone) by actors on `domain` or its subdomains, by the rule
/// blocks are matched with.
fn covered(
    conn: &mut AnyConnection,
    user: Option<UserId>,
    domain: &str,
) -> Result<Vec<(Follow, RemoteActor)>, Error> {
    // Hosts are stored with their port; LIKE narrows the rows down (its `_` wildcard may let
    // a few too many through), the exact rule decides.
    let mut query = follows::table
        .inner_join(remote_actors::table)
        .filter(
            remote_actors::host
                .eq(domain)
                .or(remote_actors::host.like(format!("%.{domain}")))
                .or(remote_actors::host.like(format!("{domain}:%")))
                .or(remote_actors::host.like(format!("%.{domain}:%"))),
        )
        .order(follows::id.asc())
        .select((Follow::as_select(), RemoteActor::as_select()))
        .into_boxed();
    if let Some(user) = user {
        query = query.filter(follows::user_id.eq(user.0));
    }
    let rows: Vec<(Follow, RemoteActor)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(_, actor)| super::blocks::domain_covers(domain, &actor.host))
        .collect())
}

/// How many follow requests wait for the user's approval.
pub fn count_pending(conn: &mut AnyConnection, user: UserId) -> Result<i64, Error> {
    Ok(follows::table
        .filter(follows::user_id.eq(user.0))
        .filter(follows::state.eq(FollowState::Pending.as_str()))
        .count()
        .get_result(conn)?)
}
