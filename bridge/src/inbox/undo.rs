//! `Undo` of a Follow, Like or Announce by the same actor.

use platform_adapter::events::{FollowerChange, OutboundPayload, Reaction};
use url::Url;

use super::{
    context::{Applied, Cx},
    parse::{ActivityKind, value_id},
    rejection::InboxRejection,
};
use crate::{
    db::{
        AnyConnection, follows,
        interactions::{self, InteractionKind},
        posts, users,
    },
    error::Error,
    to_platform,
};

/// Takes back what the undone activity did. The undone activity must be the actor's own:
/// an embedded one must name the same actor, and what is found in storage must have been
/// done by this actor.
pub(super) fn apply(conn: &mut AnyConnection, cx: &Cx) -> Result<Applied, Error> {
    let object = &cx.activity.object;
    let Some(undone) = value_id(object) else {
        return Err(InboxRejection::Malformed("Undo without an object id".into()).into());
    };
    let embedded_actor = object.get("actor").map(value_id);
    if undone.origin() != cx.activity.actor.origin()
        || embedded_actor.is_some_and(|a| a.as_ref() != Some(&cx.activity.actor))
    {
        return Err(
            InboxRejection::Malformed("Undo of an activity by another actor".into()).into(),
        );
    }
    let kind = object
        .get("type")
        .and_then(serde_json::Value::as_str)
        .map(ActivityKind::from_type);

    if undo_follow(conn, cx, &undone, kind)? {
        return Ok(Applied::accepted());
    }
    let Some(interaction) = interactions::find_by_ap_id(conn, undone.as_str())? else {
        return Ok(Applied::ignored());
    };
    let reaction_kind = interaction.kind();
    if interaction.remote_actor_id != cx.actor.id
        || !matches!(
            reaction_kind,
            Some(InteractionKind::Like | InteractionKind::Boost)
        )
        || !interactions::mark_undone(conn, interaction.id, cx.now)?
    {
        return Ok(Applied::ignored());
    }
    let (Some(user), Some(post)) = (
        users::find(conn, interaction.user_id)?,
        match interaction.post() {
            Some(id) => posts::find(conn, id)?,
            None => None,
        },
    ) else {
        return Ok(Applied::accepted());
    };
    let reaction = Reaction {
        user_id: to_platform::user_id(&user.platform_user_id)?,
        post_id: to_platform::post_id(&post.platform_post_id)?,
        by: cx.account()?,
    };
    let payload = if reaction_kind == Some(InteractionKind::Like) {
        OutboundPayload::LikeRemoved(reaction)
    } else {
        OutboundPayload::BoostRemoved(reaction)
    };
    cx.notify(conn, &format!("undo:{}", cx.activity.id), &user, payload)?;
    Ok(Applied::accepted())
}

/// Removes the follow the Undo names, found by the Follow's id or, for an embedded
/// Follow, by its target (the follower may have re-followed with another id).
fn undo_follow(
    conn: &mut AnyConnection,
    cx: &Cx,
    undone: &Url,
    kind: Option<ActivityKind>,
) -> Result<bool, Error> {
    let follow = match follows::find_by_activity_id(conn, undone.as_str())? {
        Some(follow) => Some(follow),
        None if kind == Some(ActivityKind::Follow) => {
            let target = cx.activity.object.get("object").and_then(value_id);
            match target {
                Some(target) => match cx.local_user(conn, &target)? {
                    Some(user) => follows::find(conn, user.id, cx.actor.id)?,
                    None => None,
                },
                None => None,
            }
        }
        None => None,
    };
    let Some(follow) = follow.filter(|f| f.remote_actor_id == cx.actor.id) else {
        return Ok(false);
    };
    follows::remove(conn, follow.user_id, cx.actor.id)?;
    if let Some(user) = users::find(conn, follow.user_id)? {
        let change = FollowerChange {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            follower: cx.account()?,
            pending: !follow.is_accepted(),
        };
        cx.notify(
            conn,
            &format!("undo:{}", cx.activity.id),
            &user,
            OutboundPayload::FollowerRemoved(change),
        )?;
    }
    Ok(true)
}
