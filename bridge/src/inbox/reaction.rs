//! `Like` and `Announce` of a local post.

use platform_adapter::events::{OutboundPayload, Reaction};

use super::context::{Applied, Cx};
use crate::{
    db::{
        AnyConnection,
        interactions::{self, InteractionKind, NewInteraction},
    },
    error::Error,
    to_platform,
};

/// Records a like or boost of a post that is on the fediverse now, once per actor and
/// post; anything else (other objects, hidden posts, blocked actors) is ignored.
pub(super) fn apply(
    conn: &mut AnyConnection,
    cx: &Cx,
    kind: InteractionKind,
) -> Result<Applied, Error> {
    let Some(object) = cx.activity.object_id() else {
        return Ok(Applied::ignored());
    };
    let Some((post, author, blocked)) = cx.visible_post(conn, &object)? else {
        return Ok(Applied::ignored());
    };
    if blocked {
        return Ok(Applied::ignored());
    }
    // Not inserted when the id is known, or when this actor's like (boost) of this post is
    // in effect already: a second Like with another id does not count twice.
    let inserted = interactions::insert(
        conn,
        &NewInteraction {
            ap_id: cx.activity.id.as_str(),
            kind,
            remote_actor: cx.actor.id,
            post: Some(post.id),
            user: author.id,
            object_ap_id: Some(object.as_str()),
        },
        cx.now,
    )?;
    if !inserted {
        return Ok(Applied::ignored());
    }
    let reaction = Reaction {
        user_id: to_platform::user_id(&author.platform_user_id)?,
        post_id: to_platform::post_id(&post.platform_post_id)?,
        by: cx.account()?,
    };
    let payload = match kind {
        InteractionKind::Boost => OutboundPayload::BoostAdded(reaction),
        _ => OutboundPayload::LikeAdded(reaction),
    };
    cx.notify(
        conn,
        &format!("{}:{}", kind.as_str(), cx.activity.id),
        &author,
        payload,
    )?;
    Ok(Applied::accepted())
}
