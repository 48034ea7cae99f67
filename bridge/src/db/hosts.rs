//! Per remote host delivery health: the circuit breaker's memory.

use diesel::prelude::*;

use super::{AnyConnection, schema::remote_hosts};
use crate::error::Error;

/// A host's stored health.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = remote_hosts)]
pub struct HostHealth {
    /// Host (and port).
    pub host: String,
    /// Failures since the last success.
    pub consecutive_failures: i32,
    /// First failure of the current run (ms).
    pub first_failure_at: Option<i64>,
    /// Last failure (ms).
    pub last_failure_at: Option<i64>,
    /// Last success (ms).
    pub last_success_at: Option<i64>,
    /// Nothing is sent before this time (ms): open circuit or `Retry-After`.
    pub blocked_until: Option<i64>,
    /// Failing for days: skipped until it answers again.
    pub unavailable: bool,
    /// Last change (ms).
    pub updated_at: i64,
}

/// The stored health of `host`.
pub fn find(conn: &mut AnyConnection, host: &str) -> Result<Option<HostHealth>, Error> {
    Ok(remote_hosts::table
        .find(host)
        .select(HostHealth::as_select())
        .first(conn)
        .optional()?)
}

/// Records a success for each of `hosts`, in one statement: closes their circuits and
/// clears their failure history (hosts without a record are healthy already and stay
/// without one).
pub fn record_successes(conn: &mut AnyConnection, hosts: &[&str], now: i64) -> Result<(), Error> {
    for chunk in hosts.chunks(1_000) {
        diesel::update(remote_hosts::table.filter(remote_hosts::host.eq_any(chunk)))
            .set((
                remote_hosts::consecutive_failures.eq(0),
                remote_hosts::first_failure_at.eq(None::<i64>),
                remote_hosts::blocked_until.eq(None::<i64>),
                remote_hosts::unavailable.eq(false),
                remote_hosts::last_success_at.eq(now),
                remote_hosts::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Records a failure; `blocked_until` is computed by the caller from the new count.
/// Returns the number of consecutive failures including this one.
///
/// The host's row is created first if missing (giving way to a concurrent creator) and then
/// read locked, so that two workers recording failures of one host at once neither both
/// insert nor lose a count.
pub fn record_failure(
    conn: &mut AnyConnection,
    host: &str,
    now: i64,
    unavailable_after_ms: i64,
    blocked_until: impl Fn(i32) -> Option<i64>,
) -> Result<i32, Error> {
    let fresh = (
        remote_hosts::host.eq(host),
        remote_hosts::consecutive_failures.eq(0),
        remote_hosts::updated_at.eq(now),
    );
    with_backend!(conn, c => diesel::insert_into(remote_hosts::table)
        .values(fresh)
        .on_conflict(remote_hosts::host)
        .do_nothing()
        .execute(c))?;
    let row = remote_hosts::table.find(host).select((
        remote_hosts::consecutive_failures,
        remote_hosts::first_failure_at,
    ));
    // SQLite has no row locks: its write transactions are serial already.
    let (previous, first): (i32, Option<i64>) = match conn {
        AnyConnection::Postgresql(c) => row.for_update().first(c)?,
        AnyConnection::Sqlite(c) => row.first(c)?,
    };
    let failures = previous + 1;
    let first = first.unwrap_or(now);
    let unavailable = now - first >= unavailable_after_ms;
    diesel::update(remote_hosts::table.find(host))
        .set((
            remote_hosts::consecutive_failures.eq(failures),
            remote_hosts::first_failure_at.eq(first),
            remote_hosts::last_failure_at.eq(now),
            remote_hosts::blocked_until.eq(blocked_until(failures)),
            remote_hosts::unavailable.eq(unavailable),
            remote_hosts::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(failures)
}

/// Blocks a host until `until` (a `Retry-After` on 429/503) without counting a failure run.
pub fn block_until(
    conn: &mut AnyConnection,
    host: &str,
    until: i64,
    now: i64,
) -> Result<(), Error> {
    use diesel::upsert::excluded;
    let values = (
        remote_hosts::host.eq(host),
        remote_hosts::blocked_until.eq(until),
        remote_hosts::updated_at.eq(now),
    );
    with_backend!(conn, c => diesel::insert_into(remote_hosts::table)
        .values(values)
        .on_conflict(remote_hosts::host)
        .do_update()
        .set((
            remote_hosts::blocked_until.eq(excluded(remote_hosts::blocked_until)),
            remote_hosts::updated_at.eq(excluded(remote_hosts::updated_at)),
        ))
        .execute(c))?;
    Ok(())
}

/// Forgets healthy hosts not heard of since `before` (every per-host record expires).
pub fn expire(conn: &mut AnyConnection, before: i64) -> Result<usize, Error> {
    Ok(diesel::delete(
        remote_hosts::table
            .filter(remote_hosts::updated_at.lt(before))
            .filter(remote_hosts::consecutive_failures.eq(0)),
    )
    .execute(conn)?)
}
