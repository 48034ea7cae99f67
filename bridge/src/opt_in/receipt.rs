//! The removal receipt: after turning off, how many servers were asked to delete the
//! user's content and how many answered.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::Serialize;

use crate::{
    db::{
        AnyConnection,
        schema::{activities, deliveries, removals},
        users::UserId,
    },
    error::Error,
};

/// Per-server progress of the last removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// When the removal started (ms).
    pub started_at: i64,
    /// Servers asked to delete.
    pub requested: u32,
    /// Servers that acknowledged every request (2xx, or 410: already gone).
    pub acknowledged: u32,
    /// Servers that refused (4xx).
    pub failed: u32,
    /// Servers that never answered before the retries ran out.
    pub unreachable: u32,
    /// Servers still being retried.
    pub pending: u32,
    /// Nothing is pending any more.
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HostState {
    Acknowledged,
    Failed,
    Unreachable,
    Pending,
}

/// The receipt of the user's latest removal, if they ever turned sharing off.
pub fn removal_receipt(conn: &mut AnyConnection, user: UserId) -> Result<Option<Receipt>, Error> {
    let started: Option<i64> = removals::table
        .filter(removals::user_id.eq(user.0))
        .order(removals::id.desc())
        .select(removals::started_at)
        .first(conn)
        .optional()?;
    let Some(started_at) = started else {
        return Ok(None);
    };
    let rows: Vec<(String, String, Option<i32>)> = deliveries::table
        .inner_join(activities::table)
        .filter(activities::user_id.eq(user.0))
        .filter(activities::kind.eq("Delete"))
        .filter(activities::created_at.ge(started_at))
        .select((deliveries::host, deliveries::state, deliveries::last_status))
        .load(conn)?;
    let mut hosts: BTreeMap<String, HostState> = BTreeMap::new();
    for (host, state, status) in rows {
        let this = match state.as_str() {
            "delivered" => HostState::Acknowledged,
            "failed" if status == Some(410) => HostState::Acknowledged,
            "failed" | "dropped" => HostState::Failed,
            "expired" => HostState::Unreachable,
            _ => HostState::Pending,
        };
        // A server counts by its worst answer: one pending request keeps it pending.
        let entry = hosts.entry(host).or_insert(this);
        *entry = (*entry).max(this);
    }
    let count = |s: HostState| {
        u32::try_from(hosts.values().filter(|v| **v == s).count()).unwrap_or(u32::MAX)
    };
    let pending = count(HostState::Pending);
    Ok(Some(Receipt {
        started_at,
        requested: u32::try_from(hosts.len()).unwrap_or(u32::MAX),
        acknowledged: count(HostState::Acknowledged),
        failed: count(HostState::Failed),
        unreachable: count(HostState::Unreachable),
        pending,
        complete: pending == 0,
    }))
}
