//! `Update` of a received Note, or of the actor itself.

use platform_adapter::events::OutboundPayload;

use super::{
    context::{Applied, Cx},
    note::RemoteNote,
};
use crate::{
    db::{AnyConnection, interactions, posts, remote_actors, users},
    error::Error,
    federation::fetch::ActorDocument,
};

/// Sends the edited content to every user who received the Note; Notes never received
/// here are ignored.
pub(super) fn apply_note(
    conn: &mut AnyConnection,
    cx: &Cx,
    note: &RemoteNote,
) -> Result<Applied, Error> {
    let rows = interactions::content_for_object(conn, note.id.as_str(), cx.actor.id)?;
    let mut updated = false;
    for row in rows {
        let Some(user) = users::find(conn, row.user_id)? else {
            continue;
        };
        let post = match row.post() {
            Some(id) => posts::find(conn, id)?,
            None => None,
        };
        interactions::mark_updated(conn, row.id, cx.now)?;
        let content = cx.content(note, &user, post.as_ref())?;
        updated |= cx.notify(
            conn,
            &format!("update:{}:{}", cx.activity.id, row.id),
            &user,
            OutboundPayload::ReplyUpdated(content),
        )?;
    }
    Ok(Applied::done_if(updated))
}

/// Refreshes the stored actor from its own signed Update, keeping the key it signed with
/// when still listed (a rotation otherwise takes the first key it lists as its own).
pub(super) fn apply_actor(
    conn: &mut AnyConnection,
    cx: &Cx,
    doc: &ActorDocument,
) -> Result<Applied, Error> {
    let key = cx
        .actor
        .public_key_id
        .as_deref()
        .and_then(|id| doc.key(id))
        .or_else(|| doc.keys.iter().find(|k| k.owner == doc.id.as_str()));
    let mut input = doc.input_with_key(key);
    // An Update that lists no key of the actor's own leaves the stored key alone.
    if key.is_none() {
        input.public_key_id = cx.actor.public_key_id.clone();
        input.public_key_pem = cx.actor.public_key_pem.clone();
    }
    remote_actors::upsert(conn, &input, cx.now)?;
    Ok(Applied::accepted())
}
