//! The audit log: who changed what about a user's sharing, and when.

use diesel::prelude::*;
use serde::Serialize;

use super::{AnyConnection, schema::audit_log, users::UserId};
use crate::{error::Error, opt_in::Initiator};

/// A stored audit entry.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// The user concerned.
    pub user_id: Option<i64>,
    /// What happened (`sharing.on`, `follower.removed`, …).
    pub action: String,
    /// Who did it.
    pub initiator: String,
    /// JSON details.
    pub detail: String,
    /// When (ms).
    pub created_at: i64,
}

/// Appends an entry.
pub fn record(
    conn: &mut AnyConnection,
    user: Option<UserId>,
    action: &str,
    initiator: Initiator,
    detail: &serde_json::Value,
    now: i64,
) -> Result<(), Error> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::user_id.eq(user.map(|u| u.0)),
            audit_log::action.eq(action),
            audit_log::initiator.eq(initiator.as_str()),
            audit_log::detail.eq(detail.to_string()),
            audit_log::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user's entries, newest first.
pub fn for_user(
    conn: &mut AnyConnection,
    user: UserId,
    limit: i64,
) -> Result<Vec<AuditEntry>, Error> {
    Ok(audit_log::table
        .filter(audit_log::user_id.eq(user.0))
        .select(AuditEntry::as_select())
        .order(audit_log::id.desc())
        .limit(limit)
        .load(conn)?)
}
