//! Outbound activities, stored once, and the per-inbox deliveries that fan them out.

use std::collections::HashMap;

use diesel::prelude::*;

use super::{
    AnyConnection,
    schema::{activities, deliveries},
    users::UserId,
};
use crate::error::Error;

/// The bridge's id of a stored outbound activity (monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActivityId(pub i64);

impl From<i64> for ActivityId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

/// Delivery priority: higher goes first, so removals are never starved by big fan-outs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Create, Update, Announce.
    Content = 0,
    /// Accept, Reject and other replies to remote requests.
    Response = 5,
    /// Delete, Block, Undo: taking content or relationships back.
    Removal = 10,
}

/// A stored outbound activity.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = activities)]
pub struct StoredActivity {
    /// Row id.
    #[diesel(deserialize_as = i64)]
    pub id: ActivityId,
    /// ActivityPub id (URL).
    pub ap_id: String,
    /// Activity type (`Create`, `Delete`, …).
    pub kind: String,
    /// Local actor; `None` is the instance actor.
    pub user_id: Option<i64>,
    /// The object the activity is about.
    pub object_ap_id: Option<String>,
    /// [`Priority`] as stored.
    pub priority: i32,
    /// The JSON document, signed and sent as is.
    pub payload: String,
    /// Creation (ms).
    pub created_at: i64,
}

/// Stores an activity; its deliveries are added with [`enqueue_deliveries`].
#[allow(clippy::too_many_arguments)]
pub fn insert(
    conn: &mut AnyConnection,
    ap_id: &str,
    kind: &str,
    user: Option<UserId>,
    object_ap_id: Option<&str>,
    priority: Priority,
    payload: &str,
    now: i64,
) -> Result<ActivityId, Error> {
    let id: i64 = diesel::insert_into(activities::table)
        .values((
            activities::ap_id.eq(ap_id),
            activities::kind.eq(kind),
            activities::user_id.eq(user.map(|u| u.0)),
            activities::object_ap_id.eq(object_ap_id),
            activities::priority.eq(priority as i32),
            activities::payload.eq(payload),
            activities::created_at.eq(now),
        ))
        .returning(activities::id)
        .get_result(conn)?;
    Ok(ActivityId(id))
}

/// An activity to store with [`insert_many`].
#[derive(Debug, Clone, Copy)]
pub struct NewActivity<'a> {
    /// ActivityPub id (URL).
    pub ap_id: &'a str,
    /// Activity type.
    pub kind: &'a str,
    /// Local actor; `None` is the instance actor.
    pub user: Option<UserId>,
    /// The object the activity is about.
    pub object_ap_id: Option<&'a str>,
    /// Delivery priority.
    pub priority: Priority,
    /// The JSON document.
    pub payload: &'a str,
}

/// Stores several activities in one statement per few thousand; returns their ids in the
/// order given (ids grow in that order, as if inserted one by one).
pub fn insert_many(
    conn: &mut AnyConnection,
    new: &[NewActivity<'_>],
    now: i64,
) -> Result<Vec<ActivityId>, Error> {
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(new.len());
    for chunk in new.chunks(super::rows_per_statement(7)) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|a| {
                (
                    activities::ap_id.eq(a.ap_id),
                    activities::kind.eq(a.kind),
                    activities::user_id.eq(a.user.map(|u| u.0)),
                    activities::object_ap_id.eq(a.object_ap_id),
                    activities::priority.eq(a.priority as i32),
                    activities::payload.eq(a.payload),
                    activities::created_at.eq(now),
                )
            })
            .collect();
        let inserted: Vec<(i64, String)> = with_backend!(conn, c => diesel::insert_into(activities::table)
                .values(&rows)
                .returning((activities::id, activities::ap_id))
                .get_results(c))?;
        ids.extend(inserted.into_iter().map(|(id, ap_id)| (ap_id, id)));
    }
    // RETURNING promises no order; the ActivityPub ids are unique, so they match rows up.
    new.iter()
        .map(|a| {
            ids.get(a.ap_id)
                .map(|id| ActivityId(*id))
                .ok_or_else(|| Error::Storage(format!("activity {} was not stored", a.ap_id)))
        })
        .collect()
}

/// The stored activity with this id.
pub fn find(conn: &mut AnyConnection, id: ActivityId) -> Result<Option<StoredActivity>, Error> {
    Ok(activities::table
        .find(id.0)
        .select(StoredActivity::as_select())
        .first(conn)
        .optional()?)
}

/// The stored activity with this ActivityPub id.
pub fn find_by_ap_id(
    conn: &mut AnyConnection,
    ap_id: &str,
) -> Result<Option<StoredActivity>, Error> {
    Ok(activities::table
        .filter(activities::ap_id.eq(ap_id))
        .select(StoredActivity::as_select())
        .first(conn)
        .optional()?)
}

/// Host part of an inbox URL, the unit of per-host isolation.
pub fn inbox_host(inbox: &str) -> String {
    url::Url::parse(inbox)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(port) => format!("{}:{port}", h.to_lowercase()),
                None => h.trim_end_matches('.').to_lowercase(),
            })
        })
        .unwrap_or_default()
}

/// Queues one delivery per distinct inbox; an inbox already queued for this activity is
/// skipped, so a retried fan-out never sends twice. Returns how many were added.
pub fn enqueue_deliveries(
    conn: &mut AnyConnection,
    activity: ActivityId,
    inboxes: &[String],
    priority: Priority,
    now: i64,
) -> Result<usize, Error> {
    enqueue_many(conn, &[(activity, inboxes)], priority, now)
}

/// [`enqueue_deliveries`] for several activities at once: one statement per few thousand
/// deliveries, whichever activity they belong to.
pub fn enqueue_many(
    conn: &mut AnyConnection,
    fan_outs: &[(ActivityId, &[String])],
    priority: Priority,
    now: i64,
) -> Result<usize, Error> {
    let rows: Vec<_> = fan_outs
        .iter()
        .flat_map(|(activity, inboxes)| inboxes.iter().map(move |inbox| (*activity, inbox)))
        .map(|(activity, inbox)| {
            (
                deliveries::activity_id.eq(activity.0),
                deliveries::inbox.eq(inbox.as_str()),
                deliveries::host.eq(inbox_host(inbox)),
                deliveries::state.eq("pending"),
                deliveries::priority.eq(priority as i32),
                deliveries::next_attempt_at.eq(now),
                deliveries::created_at.eq(now),
            )
        })
        .collect();
    let mut added = 0;
    for chunk in rows.chunks(super::rows_per_statement(7)) {
        added += with_backend!(conn, c => diesel::insert_into(deliveries::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(added)
}
