//! Recording what happened to deliveries: one writer task applies outcomes in batches, so
//! that throughput is not bound by one transaction per delivery (SQLite has one writer, and
//! on PostgreSQL each commit is a WAL flush).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tokio::{sync::mpsc, task::JoinHandle};

use super::{blocks::Blocked, policy};
use crate::{
    db::{
        AnyConnection, Database,
        activities::ActivityId,
        deliveries::{self, DeliveryState},
        hosts, ledger,
        users::UserId,
    },
    error::Error,
    telemetry::DeliveryMetrics,
};

/// Outcomes applied per transaction at most.
const BATCH: usize = 256;
/// Outcomes waiting for the writer at most; senders wait beyond (backpressure).
const CHANNEL: usize = 4096;

/// Where a delivered object now lives, for the ledger opt-out reads.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    /// Author.
    pub user: UserId,
    /// The object.
    pub object_ap_id: String,
    /// The inbox it went to.
    pub inbox: String,
}

/// What one delivery attempt (or the decision not to make one) came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// 2xx.
    Delivered {
        /// Delivery row.
        id: i64,
        /// Its host.
        host: String,
        /// Status.
        status: u16,
        /// For Create/Update of our objects.
        ledger: Option<LedgerEntry>,
    },
    /// 410: the inbox is gone.
    Gone {
        /// Delivery row.
        id: i64,
        /// The inbox.
        inbox: String,
    },
    /// Refused for good: other 4xx or 3xx, or an inbox that can never be sent to.
    Refused {
        /// Delivery row.
        id: i64,
        /// Status, when the inbox answered.
        status: Option<u16>,
        /// Body excerpt or error.
        error: String,
    },
    /// 408, 429, 5xx or a transport failure: try again unless too old.
    Retry {
        /// Delivery row.
        id: i64,
        /// Its host.
        host: String,
        /// Attempts before this one.
        attempts: i32,
        /// When the delivery was queued (ms).
        created_at: i64,
        /// Status, when the inbox answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
        /// The answer was 429/503 with `Retry-After`: hold the whole host until then.
        block_host: bool,
    },
    /// Consent was withdrawn: every pending delivery of the activity is dropped.
    Dropped {
        /// The activity.
        activity: ActivityId,
    },
    /// The inbox was blocked since the delivery was queued: this delivery is dropped.
    Blocked {
        /// Delivery row.
        id: i64,
        /// By whom.
        why: Blocked,
    },
    /// Not attempted, due again later (an older activity about the same object is still
    /// pending for this inbox, or our own database failed while preparing the send); no
    /// attempt is counted.
    Deferred {
        /// Delivery row.
        id: i64,
        /// When it is due again (ms).
        until: i64,
    },
    /// Claimed beyond this process's capacity for the host: given back at once.
    Released {
        /// Delivery rows.
        ids: Vec<i64>,
    },
}

/// Limits the writer applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A delivery failing after this long expires (ms).
    pub max_age_ms: i64,
    /// A host failing this long without a success is unavailable (ms).
    pub unavailable_after_ms: i64,
}

/// An outcome with the lease end of the claim round that took its deliveries: it is
/// written only while that claim still holds them (see [`deliveries::Lease`]).
#[derive(Debug, Clone)]
pub struct Leased {
    /// The `lease_until` the claim round set.
    pub lease_until: i64,
    /// What happened.
    pub outcome: Outcome,
}

/// Sends outcomes to the writer.
pub type OutcomeSender = mpsc::Sender<Leased>;

/// Starts the writer for the deliveries `owner` claims; it stops once every sender is
/// dropped and the queue is written.
pub fn spawn_writer(
    db: Database,
    metrics: DeliveryMetrics,
    limits: Limits,
    owner: String,
) -> (OutcomeSender, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Leased>(CHANNEL);
    let writer = Writer {
        db,
        metrics,
        limits,
        owner: owner.into(),
    };
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let outcomes = std::mem::take(&mut batch);
            writer.write(outcomes).await;
        }
    });
    (tx, handle)
}

struct Writer {
    db: Database,
    metrics: DeliveryMetrics,
    limits: Limits,
    owner: std::sync::Arc<str>,
}

impl Writer {
    /// Applies a batch in one transaction; if that fails, each outcome alone, so that one
    /// bad row cannot keep the others from being recorded. Whatever still fails is left
    /// leased: the lease expires and the delivery is attempted again (at least once, never
    /// lost).
    async fn write(&self, outcomes: Vec<Leased>) {
        self.metrics.outcome_batch.observe(outcomes.len() as f64);
        let (all, owner, limits) = (outcomes.clone(), self.owner.clone(), self.limits);
        match self
            .db
            .write(move |c| apply_all(c, &owner, &all, limits))
            .await
        {
            Ok(labels) => count(&self.metrics, &labels),
            Err(error) => {
                tracing::warn!(%error, size = outcomes.len(), "writing delivery outcomes failed; writing one by one");
                for outcome in outcomes {
                    let (one, owner) = (vec![outcome], self.owner.clone());
                    match self
                        .db
                        .write(move |c| apply_all(c, &owner, &one, limits))
                        .await
                    {
                        Ok(labels) => count(&self.metrics, &labels),
                        Err(error) => {
                            tracing::error!(%error, "a delivery outcome could not be written; its lease will expire")
                        }
                    }
                }
            }
        }
    }
}

fn count(metrics: &DeliveryMetrics, labels: &[(&'static str, u64)]) {
    for (label, n) in labels {
        metrics.outcomes.with_label_values(&[label]).inc_by(*n);
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Metric label of outcomes whose lease had passed to another claim: not written.
const STALE: &str = "stale";

fn apply_all(
    conn: &mut AnyConnection,
    owner: &str,
    outcomes: &[Leased],
    limits: Limits,
) -> Result<Vec<(&'static str, u64)>, Error> {
    let now = crate::db::now_millis();
    let mut labels = Vec::with_capacity(outcomes.len());
    let (delivered, stale) = record_delivered(conn, owner, outcomes, now)?;
    if delivered > 0 {
        labels.push(("delivered", delivered));
    }
    if stale > 0 {
        labels.push((STALE, stale));
    }
    for leased in outcomes {
        if !matches!(leased.outcome, Outcome::Delivered { .. }) {
            let lease = deliveries::Lease {
                owner,
                until: leased.lease_until,
            };
            labels.push(apply(conn, &leased.outcome, lease, limits, now)?);
        }
    }
    Ok(labels)
}

/// Successes, the bulk of every batch, in a few statements for the whole batch: the rows
/// (grouped by status and claim round), the ledger, and one success per host to close its
/// circuit. Returns how many were recorded and how many had lost their lease. The ledger
/// and the host's health are recorded either way: the POST did happen.
fn record_delivered(
    conn: &mut AnyConnection,
    owner: &str,
    outcomes: &[Leased],
    now: i64,
) -> Result<(u64, u64), Error> {
    let mut by_status: BTreeMap<(u16, i64), Vec<i64>> = BTreeMap::new();
    let mut healthy = BTreeSet::new();
    let mut sightings = Vec::new();
    for leased in outcomes {
        if let Outcome::Delivered {
            id,
            host,
            status,
            ledger: entry,
        } = &leased.outcome
        {
            by_status
                .entry((*status, leased.lease_until))
                .or_default()
                .push(*id);
            healthy.insert(host.as_str());
            if let Some(entry) = entry {
                sightings.push(ledger::Sighting {
                    user: entry.user,
                    object_ap_id: &entry.object_ap_id,
                    host,
                    inbox: Some(&entry.inbox),
                });
            }
        }
    }
    let (mut delivered, mut stale) = (0, 0);
    for ((status, lease_until), ids) in &by_status {
        let lease = deliveries::Lease {
            owner,
            until: *lease_until,
        };
        let finished = deliveries::finish_many(
            conn,
            ids,
            lease,
            DeliveryState::Delivered,
            Some(*status),
            now,
        )?;
        delivered += finished as u64;
        stale += (ids.len() - finished) as u64;
    }
    ledger::record_many(conn, &sightings, ledger::Via::Delivered, now)?;
    hosts::record_successes(conn, &healthy.into_iter().collect::<Vec<_>>(), now)?;
    Ok((delivered, stale))
}

/// `label` when the lease still held the delivery, else [`STALE`].
fn held(written: bool, label: &'static str) -> (&'static str, u64) {
    (if written { label } else { STALE }, 1)
}

fn apply(
    conn: &mut AnyConnection,
    outcome: &Outcome,
    lease: deliveries::Lease<'_>,
    limits: Limits,
    now: i64,
) -> Result<(&'static str, u64), Error> {
    Ok(match outcome {
        Outcome::Delivered { .. } => {
            let leased = Leased {
                lease_until: lease.until,
                outcome: outcome.clone(),
            };
            let (delivered, _) =
                record_delivered(conn, lease.owner, std::slice::from_ref(&leased), now)?;
            held(delivered == 1, "delivered")
        }
        Outcome::Gone { id, inbox } => {
            let written = deliveries::finish(
                conn,
                *id,
                lease,
                DeliveryState::Failed,
                Some(410),
                Some("gone"),
                now,
            )?;
            // The inbox said so whoever holds the row now: its followers go either way.
            let removed = deliveries::remove_follows_at_inbox(conn, inbox)?;
            tracing::info!(%inbox, removed, "inbox is gone; its followers were removed");
            held(written, "gone")
        }
        Outcome::Refused { id, status, error } => held(
            deliveries::finish(
                conn,
                *id,
                lease,
                DeliveryState::Failed,
                *status,
                Some(error),
                now,
            )?,
            "refused",
        ),
        Outcome::Retry {
            id,
            host,
            attempts,
            created_at,
            status,
            error,
            retry_after,
            block_host,
        } => {
            let attempts = u32::try_from(*attempts).unwrap_or(0);
            let delay = millis(policy::next_delay(attempts, *retry_after, policy::jitter()));
            let host_block = block_host.then_some(now.saturating_add(delay));
            hosts::record_failure(conn, host, now, limits.unavailable_after_ms, |failures| {
                let breaker =
                    policy::breaker_cooldown(failures).map(|d| now.saturating_add(millis(d)));
                breaker.max(host_block)
            })?;
            let unavailable = hosts::find(conn, host)?.is_some_and(|h| h.unavailable);
            if now.saturating_sub(*created_at) >= limits.max_age_ms || unavailable {
                let written = deliveries::finish(
                    conn,
                    *id,
                    lease,
                    DeliveryState::Expired,
                    *status,
                    Some(error),
                    now,
                )?;
                held(written, "expired")
            } else {
                let written = deliveries::retry_at(
                    conn,
                    *id,
                    lease,
                    now.saturating_add(delay),
                    true,
                    *status,
                    Some(error),
                )?;
                held(written, "retry")
            }
        }
        Outcome::Dropped { activity } => {
            let dropped = deliveries::drop_pending_for_activity(conn, *activity, now)?;
            ("dropped", u64::try_from(dropped).unwrap_or(0))
        }
        // A block is a fact whoever holds the row: no lease check (a delivered row is
        // left alone by the state check).
        Outcome::Blocked { id, why } => {
            deliveries::drop_blocked(conn, *id, why.as_str(), now)?;
            ("blocked", 1)
        }
        Outcome::Deferred { id, until } => held(
            deliveries::release(conn, &[*id], lease, Some(*until))? == 1,
            "deferred",
        ),
        Outcome::Released { ids } => {
            let released = deliveries::release(conn, ids, lease, None)?;
            ("released", u64::try_from(released).unwrap_or(0))
        }
    })
}
