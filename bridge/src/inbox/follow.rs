//! `Follow` of a local actor.

use platform_adapter::events::{FollowerChange, OutboundPayload};

use super::context::{Applied, Cx};
use crate::{
    db::{
        AnyConnection,
        blocks::{self, InstanceBlockSeverity},
        follows::{self, FollowState},
        users::User,
    },
    error::Error,
    federation::outbound,
    opt_in::SharingState,
    to_platform,
};

/// Records the follow and answers it: Accept at once, or later when the user approves
/// (locked accounts); Reject when the user or the administrator blocks the follower.
pub(super) fn apply(conn: &mut AnyConnection, cx: &Cx) -> Result<Applied, Error> {
    let Some(target) = cx.activity.object_id() else {
        return Ok(Applied::ignored());
    };
    let Some(user) = cx.local_user(conn, &target)? else {
        return Ok(Applied::ignored());
    };
    // Paused or off: the actor is unavailable, so there is no one to follow.
    if user.sharing() != SharingState::On {
        return Ok(Applied::ignored());
    }
    let follows_refused = blocks::instance_block_for(conn, &cx.actor.host)?
        == Some(InstanceBlockSeverity::FollowsOnly);
    if follows_refused || cx.blocked_by(conn, &user)? {
        return reject(conn, cx, &user);
    }

    let state = if user.manually_approves_followers {
        FollowState::Pending
    } else {
        FollowState::Accepted
    };
    let (follow, created) = follows::upsert(
        conn,
        user.id,
        cx.actor.id,
        cx.activity.id.as_str(),
        state,
        cx.now,
    )?;
    // A repeated Follow (new id) of an accepted follow is accepted again, as Mastodon
    // does, so that a follower who lost our Accept recovers.
    let accepted = follow.is_accepted();
    if accepted {
        outbound::answer_follow(
            conn,
            &user,
            &cx.actor,
            cx.activity.id.as_str(),
            true,
            &cx.urls,
            cx.now,
        )?;
    }
    if created {
        let change = FollowerChange {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            follower: cx.account()?,
            pending: !accepted,
        };
        cx.notify(
            conn,
            &format!("follower.added:{}", cx.activity.id),
            &user,
            OutboundPayload::FollowerAdded(change),
        )?;
    }
    Ok(if accepted {
        Applied::accepted_with_delivery()
    } else {
        Applied::accepted()
    })
}

fn reject(conn: &mut AnyConnection, cx: &Cx, user: &User) -> Result<Applied, Error> {
    outbound::answer_follow(
        conn,
        user,
        &cx.actor,
        cx.activity.id.as_str(),
        false,
        &cx.urls,
        cx.now,
    )?;
    if let Some(existing) = follows::find(conn, user.id, cx.actor.id)? {
        follows::remove(conn, user.id, cx.actor.id)?;
        let change = FollowerChange {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            follower: cx.account()?,
            pending: !existing.is_accepted(),
        };
        cx.notify(
            conn,
            &format!("follower.removed:{}", cx.activity.id),
            user,
            OutboundPayload::FollowerRemoved(change),
        )?;
    }
    Ok(Applied::accepted_with_delivery())
}
