//! The transactional outbox toward the platform.
//!
//! A message is written in the same transaction as the change that causes it, then relayed
//! (broker with publisher confirms, or the HTTP feed). Its id is stable, so a relay that
//! crashes between publishing and marking re-sends a message the platform can recognise.

use diesel::prelude::*;
use serde::Serialize;

use super::{AnyConnection, schema::platform_outbox};
use crate::error::Error;

/// A stored outgoing message.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = platform_outbox)]
pub struct OutboxMessage {
    /// Sequence number: the feed cursor.
    pub id: i64,
    /// Stable message id.
    pub message_id: String,
    /// The user it concerns (ordering key).
    pub order_key: String,
    /// Message type, e.g. `like.added` (also the routing key).
    pub message_type: String,
    /// The whole JSON envelope.
    pub payload: String,
    /// Creation (ms).
    pub created_at: i64,
    /// When the broker confirmed it (ms).
    pub published_at: Option<i64>,
}

/// Adds a message; a message id already present is left alone (returns `false`).
pub fn enqueue(
    conn: &mut AnyConnection,
    message_id: &str,
    order_key: &str,
    message_type: &str,
    payload: &str,
    now: i64,
) -> Result<bool, Error> {
    let values = (
        platform_outbox::message_id.eq(message_id),
        platform_outbox::order_key.eq(order_key),
        platform_outbox::message_type.eq(message_type),
        platform_outbox::payload.eq(payload),
        platform_outbox::created_at.eq(now),
    );
    let inserted = with_backend!(conn, c => diesel::insert_into(platform_outbox::table)
        .values(values)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// The oldest messages not yet confirmed by the broker.
pub fn unpublished(conn: &mut AnyConnection, limit: i64) -> Result<Vec<OutboxMessage>, Error> {
    Ok(platform_outbox::table
        .filter(platform_outbox::published_at.is_null())
        .order(platform_outbox::id.asc())
        .limit(limit)
        .select(OutboxMessage::as_select())
        .load(conn)?)
}

/// Marks messages as confirmed by the broker.
pub fn mark_published(conn: &mut AnyConnection, ids: &[i64], now: i64) -> Result<(), Error> {
    diesel::update(platform_outbox::table.filter(platform_outbox::id.eq_any(ids)))
        .set(platform_outbox::published_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Messages after the cursor `after` (the HTTP feed), oldest first.
pub fn after(
    conn: &mut AnyConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<OutboxMessage>, Error> {
    Ok(platform_outbox::table
        .filter(platform_outbox::id.gt(after))
        .order(platform_outbox::id.asc())
        .limit(limit)
        .select(OutboxMessage::as_select())
        .load(conn)?)
}
