//! Ids already handled: platform events and inbound activities. Recording an id inside the
//! transaction that applies its effect is what makes redelivery harmless.

use std::collections::HashSet;

use diesel::prelude::*;

use super::{
    AnyConnection,
    schema::{inbound_activities, processed_events},
};
use crate::error::Error;

/// Records a platform event id; `false` when it was already there (a duplicate).
pub fn claim_event(
    conn: &mut AnyConnection,
    event_id: &str,
    event_type: &str,
    now: i64,
) -> Result<bool, Error> {
    let values = (
        processed_events::event_id.eq(event_id),
        processed_events::event_type.eq(event_type),
        processed_events::processed_at.eq(now),
    );
    let inserted = with_backend!(conn, c => diesel::insert_into(processed_events::table)
        .values(values)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}

/// Records several platform events, given as (id, type), in one statement per few thousand;
/// returns the ids that were new. An id given twice is recorded once, with the type of its
/// first occurrence: the caller treats its later occurrences as duplicates.
pub fn claim_events(
    conn: &mut AnyConnection,
    events: &[(&str, &str)],
    now: i64,
) -> Result<HashSet<String>, Error> {
    let mut given = HashSet::with_capacity(events.len());
    let distinct: Vec<&(&str, &str)> = events.iter().filter(|(id, _)| given.insert(*id)).collect();
    let mut claimed = HashSet::with_capacity(distinct.len());
    for chunk in distinct.chunks(super::rows_per_statement(3)) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(id, kind)| {
                (
                    processed_events::event_id.eq(*id),
                    processed_events::event_type.eq(*kind),
                    processed_events::processed_at.eq(now),
                )
            })
            .collect();
        let inserted: Vec<String> = with_backend!(conn, c => diesel::insert_into(processed_events::table)
                .values(&rows)
                .on_conflict_do_nothing()
                .returning(processed_events::event_id)
                .get_results(c))?;
        claimed.extend(inserted);
    }
    Ok(claimed)
}

/// Whether a platform event id was already applied.
pub fn event_seen(conn: &mut AnyConnection, event_id: &str) -> Result<bool, Error> {
    let count: i64 = processed_events::table
        .filter(processed_events::event_id.eq(event_id))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// An inbound activity to claim: its id, its actor, its type and when it was received (ms).
pub type ActivityClaim<'a> = (&'a str, &'a str, &'a str, i64);

/// Records several inbound activity ids in one statement per few thousand; returns those
/// that were new. An id given twice is recorded once: the caller treats its later
/// occurrences as replays.
pub fn claim_activities(
    conn: &mut AnyConnection,
    claims: &[ActivityClaim<'_>],
) -> Result<HashSet<String>, Error> {
    let mut given = HashSet::with_capacity(claims.len());
    let distinct: Vec<&ActivityClaim<'_>> =
        claims.iter().filter(|(id, ..)| given.insert(*id)).collect();
    let mut claimed = HashSet::with_capacity(distinct.len());
    for chunk in distinct.chunks(super::rows_per_statement(4)) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|(id, actor, kind, received_at)| {
                (
                    inbound_activities::ap_id.eq(*id),
                    inbound_activities::actor_ap_id.eq(*actor),
                    inbound_activities::kind.eq(*kind),
                    inbound_activities::received_at.eq(*received_at),
                )
            })
            .collect();
        let inserted: Vec<String> = with_backend!(conn, c => diesel::insert_into(inbound_activities::table)
                .values(&rows)
                .on_conflict_do_nothing()
                .returning(inbound_activities::ap_id)
                .get_results(c))?;
        claimed.extend(inserted);
    }
    Ok(claimed)
}

/// Records an inbound activity id; `false` when it was already there (a replay).
pub fn claim_activity(
    conn: &mut AnyConnection,
    ap_id: &str,
    actor: &str,
    kind: &str,
    now: i64,
) -> Result<bool, Error> {
    let values = (
        inbound_activities::ap_id.eq(ap_id),
        inbound_activities::actor_ap_id.eq(actor),
        inbound_activities::kind.eq(kind),
        inbound_activities::received_at.eq(now),
    );
    // ON CONFLICT rather than catching the unique violation: on PostgreSQL a failed
    // statement would poison the surrounding transaction.
    let inserted = with_backend!(conn, c => diesel::insert_into(inbound_activities::table)
        .values(values)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(inserted == 1)
}
