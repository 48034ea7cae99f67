//! The delivery role: claims due deliveries under a lease and sends them concurrently,
//! within a global limit and a per-host limit, so that a slow or dead host holds at most
//! its own share of the capacity and never delays the others.
//!
//! One loop owns all bookkeeping (in-flight tasks, per-host counts and queues): no locks.
//! A claim round takes up to a few rounds' worth of work per host: what the host's
//! concurrency allows starts at once, the rest waits in the host's queue, still leased,
//! and starts as the host's sends finish. How many requests a host may have at once adapts
//! to its answers (`host_limit`). Without that queue a backlog on a few hosts
//! would cost a claim (and a release of what could not start) per finished send.
//! Outcomes go to one writer task that records them in batches.
//!
//! A claim round (a transaction, then a cache warm-up) runs as its own task beside the
//! sends: awaited inline it would stop the loop from booking finished sends and starting
//! queued ones for as long as the database takes, which under load is most of the time.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::{Id, JoinError, JoinHandle, JoinSet};

use super::{
    attempt::{self, Sender},
    cache::Caches,
    host_limit::{HostLimits, Signal},
    outcome::{self, Leased, Limits, Outcome, OutcomeSender},
};
use crate::{
    db::{deliveries, deliveries::ClaimedDelivery, hosts, now_millis},
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
/// Claimed deliveries one host may hold (running and queued), in multiples of its
/// concurrency.
const HOST_HOLD_ROUNDS: usize = 4;
/// Claimed deliveries the process may hold (running and queued), in multiples of its
/// concurrency.
const HOLD_ROUNDS: usize = 2;
/// The most concurrent requests a host can earn, in multiples of the configured
/// `per_host_concurrency` (where every host starts).
const HOST_CEILING_ROUNDS: usize = 4;
/// A host's learned limit is forgotten after this long without an answer.
const HOST_LIMIT_TTL: Duration = Duration::from_secs(600);

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
    sends: JoinSet<Leased>,
    /// Host of each running send task.
    task_hosts: HashMap<Id, String>,
    /// Running and queued deliveries per host (hosts with none are absent).
    per_host: HashMap<String, HostLoad>,
    /// Concurrent requests each host may have, learned from its answers.
    limits: HostLimits,
    /// When `limits` is next pruned.
    next_limits_expiry: Instant,
    /// Claimed deliveries waiting for their host's capacity, across all hosts.
    queued: usize,
    /// The last claim round left out hosts that held all they may: claim again when one of
    /// them is down to half.
    skipped_full_hosts: bool,
    /// The claim round in flight, if any (at most one at a time).
    claiming: Option<JoinHandle<Result<Claimed, Error>>>,
    /// Rows the claim round in flight may bring: counted as held, so that the next round
    /// does not claim them twice over.
    reserved: usize,
}

/// What a claim round brought back.
struct Claimed {
    deliveries: Vec<ClaimedDelivery>,
    lease_until: i64,
    limit: usize,
}

/// What this process holds for one host.
#[derive(Default)]
struct HostLoad {
    running: usize,
    /// Claimed, waiting to start, with the lease end of their claim round.
    waiting: VecDeque<(ClaimedDelivery, i64)>,
}

impl HostLoad {
    fn held(&self) -> usize {
        self.running + self.waiting.len()
    }
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
        let owner = uuid::Uuid::new_v4().to_string();
        let (outcomes, writer) = outcome::spawn_writer(
            state.db.clone(),
            state.metrics.delivery.clone(),
            limits,
            owner.clone(),
        );
        let sender = Arc::new(Sender {
            db: state.db.clone(),
            client: state.client.clone(),
            urls: state.urls.clone(),
            caches: Caches::default(),
            metrics: state.metrics.delivery.clone(),
            request_timeout: Duration::from_secs(settings.request_timeout_secs.max(1)),
        });
        let capacity = settings.concurrency.max(1);
        let floor = settings.per_host_concurrency.clamp(1, capacity);
        let limits = HostLimits::new(
            floor,
            floor.saturating_mul(HOST_CEILING_ROUNDS).min(capacity),
        );
        Self {
            state: state.clone(),
            settings,
            owner,
            sender,
            outcomes,
            writer,
            sends: JoinSet::new(),
            task_hosts: HashMap::new(),
            per_host: HashMap::new(),
            limits,
            next_limits_expiry: Instant::now() + HOST_LIMIT_TTL,
            queued: 0,
            skipped_full_hosts: false,
            claiming: None,
            reserved: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    /// Deliveries this process may hold at once, running or queued.
    fn hold_capacity(&self) -> usize {
        self.capacity().saturating_mul(HOLD_ROUNDS)
    }

    /// Deliveries that could be claimed now.
    fn free(&self) -> usize {
        self.hold_capacity()
            .saturating_sub(self.sends.len() + self.queued + self.reserved)
    }

    /// Free room at which a full worker claims again: a quarter of it, so that a claim
    /// round takes many rows while the rest is still in flight or queued.
    fn refill_at(&self) -> usize {
        (self.hold_capacity() / 4).max(1)
    }

    /// Concurrent requests `host` may have now.
    fn host_capacity(&self, host: &str) -> usize {
        self.limits.limit(host)
    }

    /// Deliveries `host` may hold, running or queued.
    fn host_hold(&self, host: &str) -> usize {
        self.host_capacity(host).saturating_mul(HOST_HOLD_ROUNDS)
    }

    /// Deliveries a host this process holds nothing for may be given in one claim.
    fn new_host_hold(&self) -> usize {
        self.limits.floor().saturating_mul(HOST_HOLD_ROUNDS)
    }

    /// How long before its lease ends a queued delivery may still start: a whole request
    /// should fit, or another process could claim it while it is being sent. Never more than
    /// half the lease, so that a fresh claim always starts (even when the lease is
    /// configured shorter than the request timeout, which `new` warns about).
    fn start_margin_ms(&self) -> i64 {
        let timeout = self.settings.request_timeout_secs.saturating_mul(1000);
        let half_lease = self.settings.lease_secs.saturating_mul(1000) / 2;
        i64::try_from(timeout.min(half_lease)).unwrap_or(i64::MAX / 4)
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
            if self.claiming.is_none() && (claim_now || Instant::now() >= next_poll) {
                claim_now = false;
                if self.free() == 0 {
                    claim_on_completion = true;
                    next_poll = Instant::now() + poll;
                } else {
                    self.start_claim();
                }
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                joined = claim_done(&mut self.claiming), if self.claiming.is_some() => {
                    self.claiming = None;
                    self.reserved = 0;
                    match joined {
                        Ok(Ok(claimed)) => {
                            let round = self.book(claimed).await;
                            if round.claimed == round.limit && round.released == 0 {
                                // A full round: more is probably due.
                                claim_now = true;
                            } else {
                                next_poll = Instant::now() + poll;
                            }
                            claim_on_completion |= round.released > 0;
                        }
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "claiming deliveries failed");
                            next_poll = Instant::now() + CLAIM_ERROR_PAUSE.max(poll);
                        }
                        Err(error) => {
                            // What it leased expires and is claimed again.
                            tracing::error!(%error, "a claim task failed");
                            next_poll = Instant::now() + CLAIM_ERROR_PAUSE.max(poll);
                        }
                    }
                }
                Some(joined) = self.sends.join_next_with_id(), if !self.sends.is_empty() => {
                    let host_has_room = self.completed(joined).await;
                    // Refill in rounds, not one row per finished send: a claim is a
                    // transaction, and one per delivery would cap the whole engine at the
                    // database's commit rate.
                    if claim_on_completion && self.free() >= self.refill_at() {
                        claim_on_completion = false;
                        claim_now = true;
                    } else if host_has_room && self.skipped_full_hosts {
                        self.skipped_full_hosts = false;
                        claim_now = true;
                    }
                }
                () = wakeup.notified() => claim_now = true,
                // Only with no claim in flight: its end is what the loop waits for then,
                // and a poll time already past would spin.
                () = tokio::time::sleep_until(next_poll.into()), if self.claiming.is_none() => {}
            }
        }
        self.drain().await;
    }

    /// Starts a claim round for what there is room for. Its rows are booked by `book`
    /// when it ends.
    fn start_claim(&mut self) {
        let free = self.free();
        let limit = free.min(usize::try_from(self.settings.batch_size.max(1)).unwrap_or(free));
        let host_hold = self.new_host_hold();
        let held: HashMap<String, usize> = self
            .per_host
            .iter()
            .map(|(host, load)| {
                (
                    host.clone(),
                    self.host_hold(host).saturating_sub(load.held()),
                )
            })
            .collect();
        self.skipped_full_hosts = held.values().any(|room| *room == 0);
        let owner = self.owner.clone();
        let now = now_millis();
        let lease_ms =
            i64::try_from(self.settings.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        let limit_i64 = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease_until = now.saturating_add(lease_ms);
        let db = self.state.db.clone();
        let sender = Arc::clone(&self.sender);
        self.reserved = limit;
        self.claiming = Some(tokio::spawn(async move {
            let deliveries = db
                .write(move |c| {
                    let room = deliveries::HostRoom {
                        default: host_hold,
                        hosts: &held,
                    };
                    deliveries::claim_due(c, &owner, now, lease_until, limit_i64, &room)
                })
                .await?;
            attempt::warm(&sender, &deliveries).await;
            Ok(Claimed {
                deliveries,
                lease_until,
                limit,
            })
        }));
    }

    /// Books a claim round's rows: starts what the hosts' concurrency allows, queues the
    /// rest per host and gives back what a host has no room for.
    async fn book(&mut self, claimed: Claimed) -> Round {
        let Claimed {
            deliveries,
            lease_until,
            limit,
        } = claimed;
        let count = deliveries.len();
        let mut excess = Vec::new();
        for delivery in deliveries {
            let host_hold = self.host_hold(&delivery.host);
            let load = self.per_host.entry(delivery.host.clone()).or_default();
            if load.held() >= host_hold {
                excess.push(delivery.id);
                continue;
            }
            load.waiting.push_back((delivery, lease_until));
            self.queued += 1;
        }
        self.start_ready(None).await;
        let released = excess.len();
        if released > 0 {
            self.record(Leased {
                lease_until,
                outcome: Outcome::Released { ids: excess },
            })
            .await;
        }
        Round {
            claimed: count,
            limit,
            released,
        }
    }

    /// Starts queued deliveries while there is capacity: `first`'s (the host whose send
    /// just finished) before the others'.
    async fn start_ready(&mut self, first: Option<&str>) {
        if let Some(host) = first {
            self.start_waiting(host).await;
        }
        while self.queued > 0 && self.sends.len() < self.capacity() {
            let Some(host) = self
                .per_host
                .iter()
                .find(|(host, load)| {
                    !load.waiting.is_empty() && load.running < self.host_capacity(host)
                })
                .map(|(host, _)| host.clone())
            else {
                break;
            };
            self.start_waiting(&host).await;
        }
    }

    /// Starts queued deliveries of `host` while it and the process have capacity. One whose
    /// lease is too close to its end is given back instead, to be claimed afresh.
    async fn start_waiting(&mut self, host: &str) {
        let (capacity, host_capacity) = (self.capacity(), self.host_capacity(host));
        let margin = self.start_margin_ms();
        let mut expiring: Vec<(i64, i64)> = Vec::new();
        let Some(load) = self.per_host.get_mut(host) else {
            return;
        };
        while load.running < host_capacity && self.sends.len() < capacity {
            let Some((delivery, lease_until)) = load.waiting.pop_front() else {
                break;
            };
            self.queued -= 1;
            if lease_until.saturating_sub(now_millis()) < margin {
                expiring.push((delivery.id, lease_until));
                continue;
            }
            load.running += 1;
            let sender = Arc::clone(&self.sender);
            let metrics = self.sender.metrics.clone();
            metrics.in_flight.inc();
            let handle = self.sends.spawn(async move {
                let outcome = attempt::run(sender, delivery).await;
                metrics.in_flight.dec();
                Leased {
                    lease_until,
                    outcome,
                }
            });
            self.task_hosts.insert(handle.id(), host.to_owned());
        }
        if load.held() == 0 {
            self.per_host.remove(host);
        }
        for (id, lease_until) in expiring {
            self.record(Leased {
                lease_until,
                outcome: Outcome::Released { ids: vec![id] },
            })
            .await;
        }
    }

    /// Books a finished send, passes its outcome on and starts the host's next queued
    /// delivery. Returns whether the host now holds half of what it may or less.
    async fn completed(&mut self, joined: Result<(Id, Leased), tokio::task::JoinError>) -> bool {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, Some(outcome)),
            Err(error) => {
                // Its lease expires and the delivery is tried again.
                tracing::error!(%error, "a delivery task failed");
                (error.id(), None)
            }
        };
        let signal = outcome
            .as_ref()
            .map_or(Signal::Neutral, |leased| Signal::of(&leased.outcome));
        if let Some(outcome) = outcome {
            self.record(outcome).await;
        }
        let Some(host) = self.task_hosts.remove(&id) else {
            return false;
        };
        let limit = self.host_capacity(&host);
        let mut saturated = false;
        if let Some(load) = self.per_host.get_mut(&host) {
            saturated = load.running >= limit && !load.waiting.is_empty();
            load.running = load.running.saturating_sub(1);
        }
        let now = Instant::now();
        self.limits.answered(&host, signal, saturated, now);
        if now >= self.next_limits_expiry {
            self.limits
                .expire(now.checked_sub(HOST_LIMIT_TTL).unwrap_or(now));
            self.next_limits_expiry = now + HOST_LIMIT_TTL;
        }
        self.start_ready(Some(&host)).await;
        let half = self.host_hold(&host) / 2;
        self.per_host
            .get(&host)
            .is_none_or(|load| load.held() <= half)
    }

    async fn record(&self, outcome: Leased) {
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
        // A claim in flight leased rows that will never start: give them back too. It
        // shares the sends' part of the grace period; past it, its leases simply expire.
        if let Some(claim) = self.claiming.take() {
            self.reserved = 0;
            if let Ok(Ok(Ok(claimed))) = tokio::time::timeout_at(deadline, claim).await
                && !claimed.deliveries.is_empty()
            {
                self.record(Leased {
                    lease_until: claimed.lease_until,
                    outcome: Outcome::Released {
                        ids: claimed.deliveries.iter().map(|d| d.id).collect(),
                    },
                })
                .await;
            }
        }
        // Queued deliveries were never started: give them back for whoever runs next.
        let queued: Vec<(String, VecDeque<(ClaimedDelivery, i64)>)> = self
            .per_host
            .iter_mut()
            .map(|(host, load)| (host.clone(), std::mem::take(&mut load.waiting)))
            .collect();
        self.queued = 0;
        for (_, waiting) in queued {
            for (delivery, lease_until) in waiting {
                self.record(Leased {
                    lease_until,
                    outcome: Outcome::Released {
                        ids: vec![delivery.id],
                    },
                })
                .await;
            }
        }
        while !self.sends.is_empty() {
            match tokio::time::timeout_at(deadline, self.sends.join_next_with_id()).await {
                Ok(Some(joined)) => {
                    self.completed(joined).await;
                }
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

/// The end of the claim round in flight; never, when there is none (the caller guards).
async fn claim_done(
    claiming: &mut Option<JoinHandle<Result<Claimed, Error>>>,
) -> Result<Result<Claimed, Error>, JoinError> {
    match claiming {
        Some(handle) => handle.await,
        None => std::future::pending().await,
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
