//! `Block` and `Undo(Block)` from a user to a remote actor, stored and queued like every
//! other outbound activity (in the caller's transaction).
//!
//! Mastodon drops the follow relationship in both directions when it receives a `Block`,
//! and hides the blocking account from the blocked one; `Undo(Block)` lifts that.

use serde_json::json;

use super::{
    protocol::{
        activity::{Activity, ActivityType},
        context::Context,
    },
    urls::Urls,
};
use crate::{
    db::{
        AnyConnection,
        activities::{self, ActivityId, Priority},
        remote_actors::RemoteActor,
        users::User,
    },
    error::Error,
};

fn store(
    conn: &mut AnyConnection,
    activity: &Activity<serde_json::Value>,
    user: &User,
    object: &str,
    target: &RemoteActor,
    now: i64,
) -> Result<ActivityId, Error> {
    let payload = serde_json::to_string(activity).map_err(|e| Error::Storage(e.to_string()))?;
    let id = activities::insert(
        conn,
        &activity.id,
        activity.kind.as_str(),
        Some(user.id),
        Some(object),
        Priority::Removal,
        &payload,
        now,
    )?;
    // The actor's own inbox: a block concerns that account only, not its whole server.
    activities::enqueue_deliveries(
        conn,
        id,
        std::slice::from_ref(&target.inbox),
        Priority::Removal,
        now,
    )?;
    Ok(id)
}

/// Tells `target` that `user` blocks it. Returns the activity and its ActivityPub id.
pub fn block(
    conn: &mut AnyConnection,
    user: &User,
    target: &RemoteActor,
    urls: &Urls,
    now: i64,
) -> Result<(ActivityId, String), Error> {
    let ap_id = urls.activity(&uuid::Uuid::now_v7().to_string()).to_string();
    let activity = Activity {
        context: Context,
        id: ap_id.clone(),
        kind: ActivityType::Block,
        actor: urls.actor(&user.platform_user_id).to_string(),
        to: vec![target.ap_id.clone()],
        cc: Vec::new(),
        published: None,
        target: None,
        object: json!(target.ap_id),
    };
    let id = store(conn, &activity, user, &target.ap_id, target, now)?;
    Ok((id, ap_id))
}

/// Takes back the `Block` with id `block_ap_id` that `user` sent to `target`.
pub fn undo_block(
    conn: &mut AnyConnection,
    user: &User,
    target: &RemoteActor,
    block_ap_id: &str,
    urls: &Urls,
    now: i64,
) -> Result<ActivityId, Error> {
    let actor = urls.actor(&user.platform_user_id).to_string();
    let activity = Activity {
        context: Context,
        id: urls.activity(&uuid::Uuid::now_v7().to_string()).to_string(),
        kind: ActivityType::Undo,
        actor: actor.clone(),
        to: vec![target.ap_id.clone()],
        cc: Vec::new(),
        published: None,
        target: None,
        object: json!({
            "id": block_ap_id,
            "type": "Block",
            "actor": actor,
            "object": target.ap_id,
        }),
    };
    store(conn, &activity, user, block_ap_id, target, now)
}
