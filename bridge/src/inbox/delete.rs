//! `Delete` of a received Note, or of the actor itself.

use platform_adapter::events::{FollowerChange, OutboundPayload, RemoteContentDeleted};

use super::context::{Applied, Cx};
use crate::{
    db::{AnyConnection, follows, interactions, remote_actors, users},
    error::Error,
    to_platform,
};

/// An actor deleting itself loses its follows (each followed user is told); a deleted
/// Note is reported to every user who received it.
pub(super) fn apply(conn: &mut AnyConnection, cx: &Cx) -> Result<Applied, Error> {
    let Some(object) = cx.activity.object_id() else {
        return Ok(Applied::ignored());
    };
    if object == cx.activity.actor {
        return delete_actor(conn, cx);
    }
    let rows = interactions::content_for_object(conn, object.as_str(), cx.actor.id)?;
    let mut deleted = false;
    for row in rows {
        interactions::mark_undone(conn, row.id, cx.now)?;
        let Some(user) = users::find(conn, row.user_id)? else {
            continue;
        };
        let payload = OutboundPayload::ReplyDeleted(RemoteContentDeleted {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            remote_object_id: object.clone(),
        });
        deleted |= cx.notify(
            conn,
            &format!("delete:{}:{}", cx.activity.id, row.id),
            &user,
            payload,
        )?;
    }
    Ok(Applied::done_if(deleted))
}

fn delete_actor(conn: &mut AnyConnection, cx: &Cx) -> Result<Applied, Error> {
    remote_actors::mark_deleted(conn, cx.actor.id, cx.now)?;
    for follow in follows::by_follower(conn, cx.actor.id)? {
        follows::remove(conn, follow.user_id, cx.actor.id)?;
        let Some(user) = users::find(conn, follow.user_id)? else {
            continue;
        };
        let change = FollowerChange {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            follower: cx.account()?,
            pending: !follow.is_accepted(),
        };
        cx.notify(
            conn,
            &format!("delete:{}:{}", cx.activity.id, user.platform_user_id),
            &user,
            OutboundPayload::FollowerRemoved(change),
        )?;
    }
    Ok(Applied::accepted())
}
