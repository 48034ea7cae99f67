//! The delivery role: claims due deliveries under a lease and sends them concurrently,
//! within a global limit and a per-host limit, so that a slow or dead host holds at most
//! its own share of the capacity and never delays the others.
//!
//! One loop owns all bookkeeping (in-flight tasks, per-host counts): no locks. It claims
//! only as many deliveries as it has free capacity for, never for hosts it already has
//! saturated, and gives back at once what a claim round took beyond a host's share.
//! Outcomes go to one writer task that records them in batches.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::{Id, JoinSet};

use super::{
    attempt::{self, Sender},
    cache::Caches,
    outcome::{self, Limits, Outcome, OutcomeSender},
};
use crate::{
    db::{deliveries, hosts, now_millis},
    error::Error,
    http::AppState,
    settings::DeliverySettings,
};

/// How often the queue depth gauge is refreshed.
const DEPTH_EVERY: Duration = Duration::from_secs(10);
/// How often healthy host records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Healthy host records are forgotten after this long without news.
const HOST_RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Pause after a failed claim (the database is down or locked).
const CLAIM_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Runs the delivery role until `state.shutdown` is cancelled. In-flight sends get most of
/// the shutdown grace period to finish; whatever is still running then is abandoned and
/// its lease expires, so another process (or this one, restarted) sends it again.
pub async fn run(state: AppState) {
    let worker = Worker::new(&state);
    tracing::info!(owner = %worker.owner, "delivery role started");
    // Both end on the shutdown token; joined in one task, so that dropping the role (a
    // crash, an abort) stops both.
    tokio::join!(worker.run(), maintain(state.clone()));
    tracing::info!("delivery role stopped");
}

struct Worker {
    state: AppState,
    settings: DeliverySettings,
    owner: String,
    sender: Arc<Sender>,
    outcomes: OutcomeSender,
    writer: tokio::task::JoinHandle<()>,
    sends: JoinSet<Outcome>,
    /// Host of each running send task.
    task_hosts: HashMap<Id, String>,
    /// Running sends per host.
    per_host: HashMap<String, usize>,
}

/// What one claim round did.
struct Round {
    claimed: usize,
    limit: usize,
    released: usize,
}

impl Worker {
    fn new(state: &AppState) -> Self {
        let settings = state.settings.delivery.clone();
        let hours = i64::try_from(settings.max_age_hours).unwrap_or(i64::MAX / 4);
        let days = i64::try_from(settings.unavailable_after_days).unwrap_or(i64::MAX / 4);
        let limits = Limits {
            max_age_ms: hours.saturating_mul(3_600_000),
            unavailable_after_ms: days.saturating_mul(86_400_000),
        };
        if settings.lease_secs <= settings.request_timeout_secs {
            tracing::warn!(
                lease_secs = settings.lease_secs,
                request_timeout_secs = settings.request_timeout_secs,
                "delivery.lease_secs should exceed request_timeout_secs, or a slow send may be \
                 claimed and sent again by another process"
            );
        }
        let (outcomes, writer) =
            outcome::spawn_writer(state.db.clone(), state.metrics.delivery.clone(), limits);
        let sender = Arc::new(Sender {
            db: state.db.clone(),
            client: state.client.clone(),
            urls: state.urls.clone(),
            caches: Caches::default(),
            metrics: state.metrics.delivery.clone(),
            request_timeout: Duration::from_secs(settings.request_timeout_secs.max(1)),
        });
        Self {
            state: state.clone(),
            settings,
            owner: uuid::Uuid::new_v4().to_string(),
            sender,
            outcomes,
            writer,
            sends: JoinSet::new(),
            task_hosts: HashMap::new(),
            per_host: HashMap::new(),
        }
    }

    fn capacity(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    /// Sends that could start now.
    fn free(&self) -> usize {
        self.capacity().saturating_sub(self.sends.len())
    }

    /// Free capacity at which a saturated worker claims again: a quarter of it, so that
    /// a claim round takes many rows while three quarters are still in flight.
    fn refill_at(&self) -> usize {
        (self.capacity() / 4).max(1)
    }

    fn host_capacity(&self) -> usize {
        self.settings.per_host_concurrency.clamp(1, self.capacity())
    }

    async fn run(mut self) {
        let shutdown = self.state.shutdown.clone();
        let wakeup = Arc::clone(&self.state.delivery_wakeup);
        let poll = Duration::from_millis(self.settings.poll_interval_ms.max(10));
        let mut claim_now = true;
        // A send finishing frees capacity that waiting work may need.
        let mut claim_on_completion = false;
        let mut next_poll = Instant::now();

        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if claim_now || Instant::now() >= next_poll {
                claim_now = false;
                if self.sends.len() >= self.capacity() {
                    claim_on_completion = true;
                    next_poll = Instant::now() + poll;
                } else {
                    match self.claim_round().await {
                        Ok(round) => {
                            if round.claimed == round.limit && round.released == 0 {
                                // A full round: more is probably due.
                                claim_now = true;
                            } else {
                                next_poll = Instant::now() + poll;
                            }
                            claim_on_completion |= round.released > 0;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "claiming deliveries failed");
                            next_poll = Instant::now() + CLAIM_ERROR_PAUSE.max(poll);
                        }
                    }
                }
                if claim_now {
                    continue;
                }
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(joined) = self.sends.join_next_with_id(), if !self.sends.is_empty() => {
                    self.completed(joined).await;
                    // Refill in rounds, not one row per finished send: a claim is a
                    // transaction, and one per delivery would cap the whole engine at the
                    // database's commit rate.
                    if claim_on_completion && self.free() >= self.refill_at() {
                        claim_on_completion = false;
                        claim_now = true;
                    }
                }
                () = wakeup.notified() => claim_now = true,
                () = tokio::time::sleep_until(next_poll.into()) => {}
            }
        }
        self.drain().await;
    }

    /// Claims what there is capacity for and starts sending it.
    async fn claim_round(&mut self) -> Result<Round, Error> {
        let free = self.capacity() - self.sends.len();
        let limit = free.min(usize::try_from(self.settings.batch_size.max(1)).unwrap_or(free));
        let host_capacity = self.host_capacity();
        let saturated: Vec<String> = self
            .per_host
            .iter()
            .filter(|(_, n)| **n >= host_capacity)
            .map(|(host, _)| host.clone())
            .collect();
        let owner = self.owner.clone();
        let now = now_millis();
        let lease_ms =
            i64::try_from(self.settings.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        let claimed = self
            .state
            .db
            .write(move |c| {
                deliveries::claim_due(
                    c,
                    &owner,
                    now,
                    now.saturating_add(lease_ms),
                    limit_i64,
                    &saturated,
                )
            })
            .await?;
        let count = claimed.len();
        attempt::warm(&self.sender, &claimed).await;
        let mut excess = Vec::new();
        for delivery in claimed {
            let running = self.per_host.entry(delivery.host.clone()).or_insert(0);
            if *running >= host_capacity {
                excess.push(delivery.id);
                continue;
            }
            *running += 1;
            let host = delivery.host.clone();
            let sender = Arc::clone(&self.sender);
            let metrics = self.sender.metrics.clone();
            metrics.in_flight.inc();
            let handle = self.sends.spawn(async move {
                let outcome = attempt::run(sender, delivery).await;
                metrics.in_flight.dec();
                outcome
            });
            self.task_hosts.insert(handle.id(), host);
        }
        let released = excess.len();
        if released > 0 {
            self.record(Outcome::Released { ids: excess }).await;
        }
        Ok(Round {
            claimed: count,
            limit,
            released,
        })
    }

    /// Books a finished send and passes its outcome on.
    async fn completed(&mut self, joined: Result<(Id, Outcome), tokio::task::JoinError>) {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, Some(outcome)),
            Err(error) => {
                // Its lease expires and the delivery is tried again.
                tracing::error!(%error, "a delivery task failed");
                (error.id(), None)
            }
        };
        if let Some(host) = self.task_hosts.remove(&id)
            && let Some(running) = self.per_host.get_mut(&host)
        {
            *running = running.saturating_sub(1);
            if *running == 0 {
                self.per_host.remove(&host);
            }
        }
        if let Some(outcome) = outcome {
            self.record(outcome).await;
        }
    }

    async fn record(&self, outcome: Outcome) {
        if self.outcomes.send(outcome).await.is_err() {
            tracing::error!("the delivery outcome writer stopped; the lease will expire");
        }
    }

    /// Lets in-flight sends finish within most of the grace period, then writes their
    /// outcomes.
    async fn drain(mut self) {
        let grace = self.state.settings.server.shutdown_timeout();
        let for_sends = grace.mul_f64(0.6);
        let for_writer = grace.mul_f64(0.3);
        let deadline = tokio::time::Instant::now() + for_sends;
        while !self.sends.is_empty() {
            match tokio::time::timeout_at(deadline, self.sends.join_next_with_id()).await {
                Ok(Some(joined)) => self.completed(joined).await,
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        abandoned = self.sends.len(),
                        "deliveries still in flight at shutdown; their leases will expire"
                    );
                    self.sends.abort_all();
                    break;
                }
            }
        }
        let Self {
            outcomes, writer, ..
        } = self;
        drop(outcomes);
        if tokio::time::timeout(for_writer, writer).await.is_err() {
            tracing::warn!("delivery outcomes not all written at shutdown; leases will expire");
        }
    }
}

/// Periodic upkeep: the queue depth gauge and pruning healthy host records.
async fn maintain(state: AppState) {
    let mut depth = tokio::time::interval(DEPTH_EVERY);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = depth.tick() => {
                match state.db.run(deliveries::pending_count).await {
                    Ok(n) => state.metrics.delivery.queue_depth.set(n),
                    Err(error) => tracing::warn!(%error, "counting pending deliveries failed"),
                }
            }
            _ = prune.tick() => {
                let before = now_millis().saturating_sub(
                    i64::try_from(HOST_RECORD_TTL.as_millis()).unwrap_or(i64::MAX),
                );
                match state.db.write(move |c| hosts::expire(c, before)).await {
                    Ok(n) if n > 0 => tracing::info!(pruned = n, "healthy host records expired"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "pruning host records failed"),
                }
            }
        }
    }
}
