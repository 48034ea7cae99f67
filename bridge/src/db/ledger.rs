//! Which servers received or fetched each local object: the list of everyone who must be
//! asked to delete it when the user takes it back.

use diesel::prelude::*;

use super::{AnyConnection, schema::object_ledger, users::UserId};
use crate::error::Error;

/// How a server came to hold an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// We delivered it to the server's inbox.
    Delivered,
    /// The server fetched it with a signed request.
    Fetched,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Fetched => "fetched",
        }
    }
}

/// Records that `host` holds `object_ap_id` of `user` (idempotent).
pub fn record(
    conn: &mut AnyConnection,
    user: UserId,
    object_ap_id: &str,
    host: &str,
    inbox: Option<&str>,
    via: Via,
    now: i64,
) -> Result<(), Error> {
    let updated = diesel::update(
        object_ledger::table
            .filter(object_ledger::object_ap_id.eq(object_ap_id))
            .filter(object_ledger::host.eq(host)),
    )
    .set(object_ledger::last_seen_at.eq(now))
    .execute(conn)?;
    if updated == 0 {
        let values = (
            object_ledger::user_id.eq(user.0),
            object_ledger::object_ap_id.eq(object_ap_id),
            object_ledger::host.eq(host),
            object_ledger::inbox.eq(inbox),
            object_ledger::via.eq(via.as_str()),
            object_ledger::first_seen_at.eq(now),
            object_ledger::last_seen_at.eq(now),
        );
        with_backend!(conn, c => diesel::insert_into(object_ledger::table)
            .values(values)
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(())
}

/// One row for [`record_many`].
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    /// Author.
    pub user: UserId,
    /// The object.
    pub object_ap_id: &'a str,
    /// The server that holds it.
    pub host: &'a str,
    /// The inbox it went to.
    pub inbox: Option<&'a str>,
}

/// [`record`] for many objects and servers at once, in one statement: a fan-out records
/// thousands of servers, and one round trip each would cost more than the sends.
pub fn record_many(
    conn: &mut AnyConnection,
    sightings: &[Sighting<'_>],
    via: Via,
    now: i64,
) -> Result<(), Error> {
    use diesel::upsert::excluded;
    if sightings.is_empty() {
        return Ok(());
    }
    // One row per (object, server): several inboxes of one server in a batch would make
    // the upsert touch the same row twice, which PostgreSQL refuses.
    let mut seen = std::collections::HashSet::new();
    let sightings: Vec<&Sighting<'_>> = sightings
        .iter()
        .filter(|s| seen.insert((s.object_ap_id, s.host)))
        .collect();
    // A statement may hold only so many bound values (SQLite: 32,766).
    for chunk in sightings.chunks(1_000) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|s| {
                (
                    object_ledger::user_id.eq(s.user.0),
                    object_ledger::object_ap_id.eq(s.object_ap_id),
                    object_ledger::host.eq(s.host),
                    object_ledger::inbox.eq(s.inbox),
                    object_ledger::via.eq(via.as_str()),
                    object_ledger::first_seen_at.eq(now),
                    object_ledger::last_seen_at.eq(now),
                )
            })
            .collect();
        with_backend!(conn, c => diesel::insert_into(object_ledger::table)
            .values(&rows)
            .on_conflict((object_ledger::object_ap_id, object_ledger::host))
            .do_update()
            .set(object_ledger::last_seen_at.eq(excluded(object_ledger::last_seen_at)))
            .execute(c))?;
    }
    Ok(())
}

/// Distinct inboxes of every server that holds anything of `user`.
pub fn inboxes_for_user(conn: &mut AnyConnection, user: UserId) -> Result<Vec<String>, Error> {
    let mut inboxes: Vec<String> = object_ledger::table
        .filter(object_ledger::user_id.eq(user.0))
        .filter(object_ledger::inbox.is_not_null())
        .select(object_ledger::inbox.assume_not_null())
        .distinct()
        .load(conn)?;
    inboxes.sort();
    Ok(inboxes)
}

/// Distinct inboxes of servers that hold one object.
pub fn inboxes_for_object(
    conn: &mut AnyConnection,
    object_ap_id: &str,
) -> Result<Vec<String>, Error> {
    Ok(object_ledger::table
        .filter(object_ledger::object_ap_id.eq(object_ap_id))
        .filter(object_ledger::inbox.is_not_null())
        .select(object_ledger::inbox.assume_not_null())
        .distinct()
        .load(conn)?)
}
