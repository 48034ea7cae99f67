//! `Block` of a local actor by a remote one.

use platform_adapter::events::{BlockedByRemote, FollowerChange, OutboundPayload};

use super::context::{Applied, Cx};
use crate::{
    db::{AnyConnection, follows},
    error::Error,
    opt_in::SharingState,
    to_platform,
};

/// The blocker stops following the user (as Mastodon does on both sides), and the user is
/// told they were blocked.
pub(super) fn apply(conn: &mut AnyConnection, cx: &Cx) -> Result<Applied, Error> {
    let Some(target) = cx.activity.object_id() else {
        return Ok(Applied::ignored());
    };
    let Some(user) = cx.local_user(conn, &target)? else {
        return Ok(Applied::ignored());
    };
    if user.sharing() == SharingState::Off {
        return Ok(Applied::ignored());
    }
    let by = cx.account()?;
    if let Some(follow) = follows::find(conn, user.id, cx.actor.id)? {
        follows::remove(conn, user.id, cx.actor.id)?;
        let change = FollowerChange {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            follower: by.clone(),
            pending: !follow.is_accepted(),
        };
        cx.notify(
            conn,
            &format!("block.unfollow:{}", cx.activity.id),
            &user,
            OutboundPayload::FollowerRemoved(change),
        )?;
    }
    let blocked = BlockedByRemote {
        user_id: to_platform::user_id(&user.platform_user_id)?,
        by,
    };
    cx.notify(
        conn,
        &format!("block:{}", cx.activity.id),
        &user,
        OutboundPayload::UserBlockedByRemote(blocked),
    )?;
    Ok(Applied::accepted())
}
