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
    replanned,
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

/// The claim under which a worker sends a delivery: who claimed it and the lease end it
/// set. Outcomes are written only while the row is still pending under this very claim, so
/// a send that outlived its lease (and was claimed again, perhaps already delivered by the
/// new claimer) cannot overwrite the newer state.
///
/// A row is found by id and lease alone: only a pending row holds a lease (every transition
/// out of `pending` clears it; PostgreSQL enforces that with a CHECK constraint), and
/// leaving `state` out keeps the planner on the primary key. With it, the planner used an
/// index on `state` full of dead entries and read every pending row of a 20,000-row
/// fan-out for each batch of outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    /// The claimer (one per delivery role).
    pub owner: &'a str,
    /// The `lease_until` its claim round set.
    pub until: i64,
}

/// How many more deliveries the claimer may take per host in one round.
#[derive(Debug, Clone, Copy)]
pub struct HostRoom<'a> {
    /// Room for hosts not listed.
    pub default: usize,
    /// Hosts the claimer already holds deliveries for, with the room left (0 = none:
    /// such hosts are not even read).
    pub hosts: &'a std::collections::HashMap<String, usize>,
}

impl HostRoom<'_> {
    fn of(&self, host: &str) -> usize {
        self.hosts.get(host).copied().unwrap_or(self.default)
    }
}

/// Runs `read` with PostgreSQL steered to read the queue through `deliveries_queue` in its
/// order (a plain index scan that stops after the rows it wants), never through a bitmap
/// scan and a sort.
///
/// Every delivery leaves index entries of its dead `pending` versions behind until vacuum
/// reaches them, tens of thousands under a steady stream. A bitmap scan visits the heap for
/// every one of them on every claim (seen: 25,000 entries and 700 heap pages for 70 live
/// rows, 13 ms), and the planner, which knows only the few live rows, prefers it. A plain
/// index scan marks the dead entries it meets, so that later scans skip them without
/// touching the heap. Only for this statement: the claim's lookups by id are best done with
/// a bitmap of the primary key. Must run in a transaction; plain `read` on SQLite.
fn reading_queue_in_order<T>(
    conn: &mut AnyConnection,
    read: impl FnOnce(&mut AnyConnection) -> Result<T, Error>,
) -> Result<T, Error> {
    use diesel::connection::SimpleConnection;
    let postgres = matches!(conn, AnyConnection::Postgresql(_));
    if postgres {
        conn.batch_execute("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off")?;
    }
    let result = read(conn)?;
    if postgres {
        conn.batch_execute(
            "SET LOCAL enable_bitmapscan TO DEFAULT; SET LOCAL enable_sort TO DEFAULT",
        )?;
    }
    Ok(result)
}

/// Rows read per row wanted when picking a claim round: enough that a host with little
/// room does not fill the window and starve the others.
const CANDIDATES_PER_CLAIM: i64 = 4;

/// Claims up to `limit` due deliveries for `owner` until `lease_until` (highest priority
/// first, then the longest due), skipping hosts whose circuit is open and taking no more per host
/// than `room` allows. Must run in a write transaction.
///
/// Candidates are read without locks, picked per host here, and only the picked rows are
/// locked (on PostgreSQL with `SKIP LOCKED`, so concurrent claimers never wait on each
/// other) and leased: a backlog on a few hosts then costs no claim-and-give-back.
pub fn claim_due(
    conn: &mut AnyConnection,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
    room: &HostRoom<'_>,
) -> Result<Vec<ClaimedDelivery>, Error> {
    let full: Vec<&str> = room
        .hosts
        .iter()
        .filter(|(_, left)| **left == 0)
        .map(|(host, _)| host.as_str())
        .collect();
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
        );
    // Every statement here is planned per run (`replanned`): generic plans settled while
    // the queue was empty stay sequential scans once it holds millions of rows.
    let candidates: Vec<(i64, String)> = reading_queue_in_order(conn, |c| {
        replanned::load(
            c,
            due.filter(deliveries::host.ne_all(blocked_hosts))
                .filter(deliveries::host.ne_all(&full))
                .order((
                    deliveries::priority.desc(),
                    deliveries::next_attempt_at.asc(),
                    deliveries::id.asc(),
                ))
                .limit(limit.saturating_mul(CANDIDATES_PER_CLAIM))
                .select((deliveries::id, deliveries::host)),
        )
    })?;
    let mut taken: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut picked = Vec::new();
    for (id, host) in &candidates {
        if picked.len() as i64 >= limit {
            break;
        }
        let count = taken.entry(host.as_str()).or_insert(0);
        if *count < room.of(host) {
            *count += 1;
            picked.push(*id);
        }
    }
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    // Re-checked under the lock: another claimer may have taken a row since it was read.
    // Found by id alone (the primary key is the only index the lock can use) and checked
    // here, because any index on `state` is full of dead entries (see
    // `reading_queue_in_order`).
    let lockable = deliveries::table
        .filter(deliveries::id.eq_any(&picked))
        .select((
            deliveries::id,
            deliveries::state,
            deliveries::next_attempt_at,
            deliveries::lease_until,
        ));
    let locked: Vec<(i64, String, i64, Option<i64>)> = match conn {
        AnyConnection::Postgresql(c) => {
            replanned::Replanned(lockable.for_update().skip_locked()).load(c)?
        }
        AnyConnection::Sqlite(c) => lockable.load(c)?,
    };
    let ids: Vec<i64> = locked
        .into_iter()
        .filter(|(_, state, next_attempt_at, lease)| {
            state == DeliveryState::Pending.as_str()
                && *next_attempt_at <= now
                && lease.is_none_or(|until| until < now)
        })
        .map(|(id, ..)| id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    replanned::execute(
        conn,
        diesel::update(deliveries::table.filter(deliveries::id.eq_any(&ids))).set((
            deliveries::lease_owner.eq(owner),
            deliveries::lease_until.eq(lease_until),
        )),
    )?;
    replanned::load(
        conn,
        deliveries::table
            .inner_join(activities::table)
            .filter(deliveries::id.eq_any(&ids))
            .order((
                deliveries::priority.desc(),
                deliveries::next_attempt_at.asc(),
                deliveries::id.asc(),
            ))
            .select((
                deliveries::id,
                deliveries::activity_id,
                deliveries::inbox,
                deliveries::host,
                deliveries::attempts,
                deliveries::created_at,
                activities::kind,
                activities::object_ap_id,
            )),
    )
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
    lease: Lease<'_>,
    not_before: Option<i64>,
) -> Result<usize, Error> {
    let rows = deliveries::table
        .filter(deliveries::id.eq_any(ids))
        .filter(deliveries::lease_owner.eq(lease.owner))
        .filter(deliveries::lease_until.eq(lease.until));
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

/// Records a final outcome, if `lease` still holds the delivery; returns whether it did.
pub fn finish(
    conn: &mut AnyConnection,
    id: i64,
    lease: Lease<'_>,
    state: DeliveryState,
    status: Option<u16>,
    error: Option<&str>,
    now: i64,
) -> Result<bool, Error> {
    let updated = diesel::update(
        deliveries::table
            .find(id)
            .filter(deliveries::lease_owner.eq(lease.owner))
            .filter(deliveries::lease_until.eq(lease.until)),
    )
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
    Ok(updated == 1)
}

/// [`finish`] for many deliveries under one lease that ended the same way, in one
/// statement per thousand; returns how many `lease` still held.
pub fn finish_many(
    conn: &mut AnyConnection,
    ids: &[i64],
    lease: Lease<'_>,
    state: DeliveryState,
    status: Option<u16>,
    now: i64,
) -> Result<usize, Error> {
    let mut finished = 0;
    for chunk in ids.chunks(1_000) {
        finished += diesel::update(
            deliveries::table
                .filter(deliveries::id.eq_any(chunk))
                .filter(deliveries::lease_owner.eq(lease.owner))
                .filter(deliveries::lease_until.eq(lease.until)),
        )
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
    Ok(finished)
}

/// Schedules another attempt at `next_attempt_at`, if `lease` still holds the delivery;
/// returns whether it did.
pub fn retry_at(
    conn: &mut AnyConnection,
    id: i64,
    lease: Lease<'_>,
    next_attempt_at: i64,
    count_attempt: bool,
    status: Option<u16>,
    error: Option<&str>,
) -> Result<bool, Error> {
    let increment = i32::from(count_attempt);
    let updated = diesel::update(
        deliveries::table
            .find(id)
            .filter(deliveries::lease_owner.eq(lease.owner))
            .filter(deliveries::lease_until.eq(lease.until)),
    )
    .set((
        deliveries::attempts.eq(deliveries::attempts + increment),
        deliveries::next_attempt_at.eq(next_attempt_at),
        deliveries::last_status.eq(status.map(i32::from)),
        deliveries::last_error.eq(error),
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_until.eq(None::<i64>),
    ))
    .execute(conn)?;
    Ok(updated == 1)
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
