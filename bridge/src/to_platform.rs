//! Messages to the platform, written to the transactional outbox with the change that
//! causes them.
//!
//! Message ids are derived from their cause (UUID v5), so re-applying the same cause — a
//! redelivered event, a replayed activity — produces the same id, and the outbox (and the
//! platform) drop the repeat.

use chrono::{DateTime, Utc};
use platform_adapter::events::{
    self as contract, EventId, OrderKey, OutboundEvent, OutboundPayload, RemoteAccount,
};

use crate::{
    db::{AnyConnection, outbox, remote_actors::RemoteActor},
    error::Error,
};

/// Namespace of derived message ids.
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1c_2b7e_5a0d_4c1e_9b3f_82d4_a7e6_0c51);

/// A stable message id for `cause` (any string that identifies what happened).
pub fn message_id(cause: &str) -> String {
    uuid::Uuid::new_v5(&NAMESPACE, cause.as_bytes()).to_string()
}

/// Writes one message for the user `platform_user_id`; returns `false` when a message with
/// the same cause was already written.
pub fn enqueue(
    conn: &mut AnyConnection,
    cause: &str,
    platform_user_id: &str,
    payload: OutboundPayload,
    now: i64,
) -> Result<bool, Error> {
    let id = message_id(cause);
    let user = contract::UserId::new(platform_user_id)?;
    let event = OutboundEvent::new(
        EventId::new(id.clone())?,
        DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default(),
        OrderKey::from(user),
        payload,
    );
    let routing_key = event.routing_key();
    let bytes = event.encode()?;
    let body = String::from_utf8(bytes).map_err(|e| Error::Storage(e.to_string()))?;
    outbox::enqueue(conn, &id, platform_user_id, routing_key, &body, now)
}

/// The platform's id type for a user.
pub fn user_id(platform_user_id: &str) -> Result<contract::UserId, Error> {
    Ok(contract::UserId::new(platform_user_id)?)
}

/// The platform's id type for a post.
pub fn post_id(platform_post_id: &str) -> Result<contract::PostId, Error> {
    Ok(contract::PostId::new(platform_post_id)?)
}

/// How a remote actor is described to the platform.
pub fn remote_account(actor: &RemoteActor) -> Result<RemoteAccount, Error> {
    let parse = |s: &str| url::Url::parse(s).ok();
    let actor_id = url::Url::parse(&actor.ap_id)
        .map_err(|e| Error::Storage(format!("stored actor id: {e}")))?;
    let name = actor
        .preferred_username
        .clone()
        .filter(|n| !n.is_empty() && !n.contains(['@', ' ']))
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(RemoteAccount {
        actor_id,
        handle: format!("@{name}@{}", actor.host),
        display_name: actor
            .name
            .clone()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
        avatar_url: actor.icon_url.as_deref().and_then(parse),
        profile_url: actor.url.as_deref().and_then(parse),
        server: actor.host.clone(),
    })
}
