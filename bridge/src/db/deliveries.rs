//! The delivery queue: claiming due deliveries under a lease, and recording outcomes.
//!
//! Several processes may run delivery on one database. A claim sets `lease_owner` and
//! `lease_until`; on PostgreSQL it skips rows other claimers hold (`FOR UPDATE SKIP LOCKED`),
//! on SQLite the write lock serialises claimers. A crashed owner's lease simply expires, so
//! at most the in-flight window is sent again.

use diesel::prelude::*;

use super::{
    AnyConnection,
    activities::ActivityId,
    schema::{activities, deliveries, follows, remote_actors, remote_hosts},
};
use crate::error::Error;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting to be sent (or re-sent).
    Pending,
    /// The inbox answered 2xx.
    Delivered,
    /// Refused for good (4xx), or the host was gone.
    Failed,
    /// Retried until its time ran out.
    Expired,
    /// Not sent: consent or visibility was withdrawn, or the inbox blocked, before send
    /// time.
    Dropped,
}

impl DeliveryState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Dropped => "dropped",
        }
    }
}

/// A claimed delivery with what the sender needs about its activity.
#[derive(Debug, Clone, Queryable)]
pub struct ClaimedDelivery {
    /// Row id.
    pub id: i64,
    /// The activity.
    #[diesel(deserialize_as = i64)]
    pub activity_id: ActivityId,
    /// Target inbox.
    pub inbox: String,
    /// Its host.
    pub host: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When it was queued (ms).
    pub created_at: i64,
    /// The activity's type.
    pub kind: String,
    /// The activity's object.
    pub object_ap_id: Option<String>,
}

/// Claims up to `limit` due deliveries for `owner` until `lease_until` (highest priority
/// first, then oldest), skipping hosts whose circuit is open and `except_hosts` (hosts the
/// caller has no capacity for right now). Must run in a write transaction.
pub fn claim_due(
    conn: &mut AnyConnection,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
    except_hosts: &[String],
) -> Result<Vec<ClaimedDelivery>, Error> {
    let blocked_hosts = remote_hosts::table
        .filter(remote_hosts::blocked_until.gt(now))
        .select(remote_hosts::host);
    let due = deliveries::table
        .filter(deliveries::state.eq(DeliveryState::Pending.as_str()))
        .filter(deliveries::next_attempt_at.le(now))
        .filter(
            deliveries::lease_until
                .is_null()
                .or(deliveries::lease_until.lt(now)),
        )
        .filter(deliveries::host.ne_all(blocked_hosts))
        .filter(deliveries::host.ne_all(except_hosts))
        .order((deliveries::priority.desc(), deliveries::id.asc()))
        .limit(limit)
        .select(deliveries::id);
    let ids: Vec<i64> = match conn {
        AnyConnection::Postgresql(c) => due.for_update().skip_locked().load(c)?,
        AnyConnection::Sqlite(c) => due.load(c)?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(deliveries::table.filter(deliveries::id.eq_any(&ids)))
        .set((
            deliveries::lease_owner.eq(owner),
            deliveries::lease_until.eq(lease_until),
        ))
        .execute(conn)?;
    Ok(deliveries::table
        .inner_join(activities::table)
        .filter(deliveries::id.eq_any(&ids))
        .order((deliveries::priority.desc(), deliveries::id.asc()))
        .select((
            deliveries::id,
            deliveries::activity_id,
            deliveries::inbox,
            deliveries::host,
            deliveries::attempts,
            deliveries::created_at,
            activities::kind,
            activities::object_ap_id,
        ))
        .load(conn)?)
}

/// Whether an older activity about the same object still waits for the same inbox: then
/// this one must wait too, so that Create arrives before Update before Delete.
pub fn has_older_pending(
    conn: &mut AnyConnection,
    inbox: &str,
    object_ap_id: &str,
    activity: ActivityId,
) -> Result<bool, Error> {
    let count: i64 = deliveries::table
        .inner_join(activities::table)
        .filter(deliveries::inbox.eq(inbox))
        .filter(deliveries::state.eq(DeliveryState::Pending.as_str()))
        .filter(deliveries::activity_id.lt(activity.0))
        .filter(activities::object_ap_id.eq(object_ap_id))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// When the earliest older pending delivery about the same object to the same inbox is
/// next due, if there is one: a later activity waits for it (Create before Update before
/// Delete), and knowing when avoids polling for hours behind a backed-off Create.
pub fn older_pending_due(
    conn: &mut AnyConnection,
    inbox: &str,
    object_ap_id: &str,
    activity: ActivityId,
) -> Result<Option<i64>, Error> {
    Ok(deliveries::table
        .inner_join(activities::table)
        .filter(deliveries::inbox.eq(inbox))
        .filter(deliveries::state.eq(DeliveryState::Pending.as_str()))
        .filter(deliveries::activity_id.lt(activity.0))
        .filter(activities::object_ap_id.eq(object_ap_id))
        .select(diesel::dsl::min(deliveries::next_attempt_at))
        .first::<Option<i64>>(conn)?)
}

/// Gives claimed deliveries back without counting an attempt: due again at `not_before`
/// when given, else at once for whoever has capacity.
pub fn release(
    conn: &mut AnyConnection,
    ids: &[i64],
    not_before: Option<i64>,
) -> Result<usize, Error> {
    let rows = deliveries::table
        .filter(deliveries::id.eq_any(ids))
        .filter(deliveries::state.eq(DeliveryState::Pending.as_str()));
    let released = match not_before {
        Some(at) => diesel::update(rows)
            .set((
                deliveries::next_attempt_at.eq(at),
                deliveries::lease_owner.eq(None::<String>),
                deliveries::lease_until.eq(None::<i64>),
            ))
            .execute(conn)?,
        None => diesel::update(rows)
            .set((
                deliveries::lease_owner.eq(None::<String>),
                deliveries::lease_until.eq(None::<i64>),
            ))
            .execute(conn)?,
    };
    Ok(released)
}

/// Removes every follow by an actor whose inbox or shared inbox is `inbox` (it answered
/// 410 Gone: nobody there receives anything any more). Returns how many were removed.
pub fn remove_follows_at_inbox(conn: &mut AnyConnection, inbox: &str) -> Result<usize, Error> {
    let actors = remote_actors::table
        .filter(
            remote_actors::inbox
                .eq(inbox)
                .or(remote_actors::shared_inbox.eq(inbox)),
        )
        .select(remote_actors::id);
    Ok(
        diesel::delete(follows::table.filter(follows::remote_actor_id.eq_any(actors)))
            .execute(conn)?,
    )
}

/// Records a final outcome.
pub fn finish(
    conn: &mut AnyConnection,
    id: i64,
    state: DeliveryState,
    status: Option<u16>,
    error: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    diesel::update(deliveries::table.find(id))
        .set((
            deliveries::state.eq(state.as_str()),
            deliveries::attempts.eq(deliveries::attempts + 1),
            deliveries::last_status.eq(status.map(i32::from)),
            deliveries::last_error.eq(error),
            deliveries::finished_at.eq(now),
            deliveries::lease_owner.eq(None::<String>),
            deliveries::lease_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// [`finish`] for many deliveries that ended the same way, in one statement.
pub fn finish_many(
    conn: &mut AnyConnection,
    ids: &[i64],
    state: DeliveryState,
    status: Option<u16>,
    now: i64,
) -> Result<(), Error> {
    for chunk in ids.chunks(1_000) {
        diesel::update(deliveries::table.filter(deliveries::id.eq_any(chunk)))
            .set((
                deliveries::state.eq(state.as_str()),
                deliveries::attempts.eq(deliveries::attempts + 1),
                deliveries::last_status.eq(status.map(i32::from)),
                deliveries::last_error.eq(None::<String>),
                deliveries::finished_at.eq(now),
                deliveries::lease_owner.eq(None::<String>),
                deliveries::lease_until.eq(None::<i64>),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Schedules another attempt at `next_attempt_at`.
pub fn retry_at(
    conn: &mut AnyConnection,
    id: i64,
    next_attempt_at: i64,
    count_attempt: bool,
    status: Option<u16>,
    error: Option<&str>,
) -> Result<(), Error> {
    let increment = i32::from(count_attempt);
    diesel::update(deliveries::table.find(id))
        .set((
            deliveries::attempts.eq(deliveries::attempts + increment),
            deliveries::next_attempt_at.eq(next_attempt_at),
            deliveries::last_status.eq(status.map(i32::from)),
            deliveries::last_error.eq(error),
            deliveries::lease_owner.eq(None::<String>),
            deliveries::lease_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Drops every pending delivery of `activity` (consent withdrawn before send time).
pub fn drop_pending_for_activity(
    conn: &mut AnyConnection,
    activity: ActivityId,
    now: i64,
) -> Result<usize, Error> {
    Ok(diesel::update(
        deliveries::table
            .filter(deliveries::activity_id.eq(activity.0))
            .filter(deliveries::state.eq(DeliveryState::Pending.as_str())),
    )
    .set((
        deliveries::state.eq(DeliveryState::Dropped.as_str()),
        deliveries::finished_at.eq(now),
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_until.eq(None::<i64>),
    ))
    .execute(conn)?)
}

/// Drops one pending delivery whose inbox was blocked after it was queued; `reason` is
/// kept as its `last_error`. No attempt is counted: nothing was sent.
pub fn drop_blocked(
    conn: &mut AnyConnection,
    id: i64,
    reason: &str,
    now: i64,
) -> Result<(), Error> {
    diesel::update(
        deliveries::table
            .find(id)
            .filter(deliveries::state.eq(DeliveryState::Pending.as_str())),
    )
    .set((
        deliveries::state.eq(DeliveryState::Dropped.as_str()),
        deliveries::last_error.eq(reason),
        deliveries::finished_at.eq(now),
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_until.eq(None::<i64>),
    ))
    .execute(conn)?;
    Ok(())
}

/// How many deliveries are still pending.
pub fn pending_count(conn: &mut AnyConnection) -> Result<i64, Error> {
    Ok(deliveries::table
        .filter(deliveries::state.eq(DeliveryState::Pending.as_str()))
        .count()
        .get_result(conn)?)
}

/// Counts by state for one activity: (state, count).
pub fn states_for_activity(
    conn: &mut AnyConnection,
    activity: ActivityId,
) -> Result<Vec<(String, i64)>, Error> {
    Ok(deliveries::table
        .filter(deliveries::activity_id.eq(activity.0))
        .group_by(deliveries::state)
        .select((deliveries::state, diesel::dsl::count_star()))
        .load(conn)?)
}
