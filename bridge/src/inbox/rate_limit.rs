//! Budgets per remote host and per remote actor on the inbox (GCRA, through `governor`).
//!
//! Only **authenticated** activities are charged to a host's or an actor's budget. A budget
//! charged before the signature is checked could be spent by anyone who names a server in
//! forged requests, and so silence that server. Two checks run before authentication, and
//! neither lets a forger harm a real server:
//! - a host or actor already over budget is refused at once, until the `Retry-After` it was
//!   given: only its own authenticated traffic can have put it there;
//! - fetching an unknown or stale key spends from the host's separate key-fetch budget, so a
//!   flood of made-up key ids cannot make the bridge fetch from one server without bound (a
//!   forger can at most delay the first activity of that server's new actors).
//!
//! Memory stays bounded under a flood of distinct hosts or actors: a key's state is kept only
//! while it differs from a fresh one, and stale keys are pruned every few seconds, so the
//! number of keys held follows the traffic of the last replenish period, not every host ever
//! seen.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use governor::{
    DefaultKeyedRateLimiter, Quota,
    clock::{Clock, DefaultClock},
};
use prometheus::{IntCounterVec, IntGaugeVec};
use url::Url;

use crate::{federation::address_policy::canonical_host, settings::Settings, telemetry::Metrics};

/// How often stale keys are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(5);

/// Whose budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// A remote host's activities.
    Host,
    /// A remote actor's activities.
    Actor,
    /// Key fetches caused by one remote host's requests.
    KeyFetch,
}

impl LimitScope {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Actor => "actor",
            Self::KeyFetch => "key_fetch",
        }
    }
}

/// A request over budget, answered 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// Which budget.
    pub scope: LimitScope,
    /// When the next request may be accepted.
    pub retry_after: Duration,
}

impl RateLimited {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        };
        secs.max(1)
    }
}

/// One keyed budget, with the keys it refused and until when.
struct Budget {
    scope: LimitScope,
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    /// Keys refused and the time their next request may pass: later requests inside that
    /// window are refused before any work. Pruned with the limiter.
    refused_until: Mutex<HashMap<String, Instant>>,
    last_prune: Mutex<Instant>,
    prune_interval: Duration,
    keys: IntGaugeVec,
}

impl Budget {
    /// `None` when `per_minute` is 0 (unlimited).
    fn new(
        scope: LimitScope,
        per_minute: u32,
        burst: u32,
        metrics: &Metrics,
        prune_interval: Duration,
    ) -> Option<Self> {
        let rate = NonZeroU32::new(per_minute)?;
        // Validated: burst ≥ 1 whenever the rate is set; a burst of 1 keeps this total anyway.
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Some(Self {
            scope,
            limiter: DefaultKeyedRateLimiter::dashmap(Quota::per_minute(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
            refused_until: Mutex::default(),
            last_prune: Mutex::new(Instant::now()),
            prune_interval,
            keys: metrics.inbox_rate_limit_keys.clone(),
        })
    }

    /// Refuses `key` while it is inside the window of an earlier refusal, without charging.
    fn still_refused(&self, key: &str) -> Option<RateLimited> {
        let now = Instant::now();
        let until = *lock(&self.refused_until).get(key)?;
        (until > now).then(|| RateLimited {
            scope: self.scope,
            retry_after: until - now,
        })
    }

    /// Spends one request of `key`'s budget, or says when it may come back.
    fn charge(&self, key: &str) -> Result<(), RateLimited> {
        self.prune_if_due();
        let key = key.to_owned();
        match self.limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let now = self.clock.now();
                let retry_after = not_until.wait_time_from(now);
                lock(&self.refused_until).insert(key, now + retry_after);
                Err(RateLimited {
                    scope: self.scope,
                    retry_after,
                })
            }
        }
    }

    fn prune_if_due(&self) {
        // One caller prunes; the others go on without waiting for it.
        let Ok(mut last) = self.last_prune.try_lock() else {
            return;
        };
        if last.elapsed() < self.prune_interval {
            return;
        }
        self.prune();
        *last = Instant::now();
    }

    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = Instant::now();
        let mut refused = lock(&self.refused_until);
        refused.retain(|_, until| *until > now);
        refused.shrink_to_fit();
        drop(refused);
        self.keys
            .with_label_values(&[self.scope.as_str()])
            .set(i64::try_from(self.len()).unwrap_or(i64::MAX));
    }

    fn len(&self) -> usize {
        self.limiter.len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps hold no invariant a panicking holder could break.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The inbox's budgets, shared by every request of one process.
pub struct InboxRateLimits {
    host: Option<Budget>,
    actor: Option<Budget>,
    key_fetch: Option<Budget>,
    /// Our own hosts (base URL and handle domain): never limited.
    own_hosts: Vec<String>,
    limited: IntCounterVec,
}

impl std::fmt::Debug for InboxRateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboxRateLimits")
            .field("host", &self.host.is_some())
            .field("actor", &self.actor.is_some())
            .field("own_hosts", &self.own_hosts)
            .finish()
    }
}

impl InboxRateLimits {
    /// Budgets as configured in `[inbox]`; the key-fetch budget uses the host quota.
    pub fn new(settings: &Settings, metrics: &Metrics) -> Self {
        Self::with_prune_interval(settings, metrics, PRUNE_INTERVAL)
    }

    fn with_prune_interval(settings: &Settings, metrics: &Metrics, prune: Duration) -> Self {
        let inbox = &settings.inbox;
        let own_hosts = [
            Url::parse(&settings.federation.base_url).ok(),
            Url::parse(&format!("https://{}/", settings.federation.domain)).ok(),
        ]
        .into_iter()
        .flatten()
        .map(|url| canonical_host(&url))
        .collect();
        let budget =
            |scope, per_minute, burst| Budget::new(scope, per_minute, burst, metrics, prune);
        Self {
            host: budget(
                LimitScope::Host,
                inbox.host_activities_per_minute,
                inbox.host_burst,
            ),
            actor: budget(
                LimitScope::Actor,
                inbox.actor_activities_per_minute,
                inbox.actor_burst,
            ),
            key_fetch: budget(
                LimitScope::KeyFetch,
                inbox.host_activities_per_minute,
                inbox.host_burst,
            ),
            own_hosts,
            limited: metrics.inbox_rate_limited.clone(),
        }
    }

    /// Before any work: refuses a host or actor still inside an earlier refusal's window.
    pub fn check_not_refused(&self, host: &str, actor: &Url) -> Result<(), RateLimited> {
        if self.is_own(host) {
            return Ok(());
        }
        let refusal = self
            .actor
            .as_ref()
            .and_then(|b| b.still_refused(actor.as_str()))
            .or_else(|| self.host.as_ref().and_then(|b| b.still_refused(host)));
        self.count(refusal.map_or(Ok(()), Err))
    }

    /// Before fetching a key for a request from `host`.
    pub fn charge_key_fetch(&self, host: &str) -> Result<(), RateLimited> {
        if self.is_own(host) {
            return Ok(());
        }
        self.count(self.key_fetch.as_ref().map_or(Ok(()), |b| b.charge(host)))
    }

    /// After authentication and before any effect: the actor's budget, then its host's (so
    /// that one flooding actor is stopped without spending its neighbours' budget).
    pub fn charge_activity(&self, host: &str, actor: &Url) -> Result<(), RateLimited> {
        if self.is_own(host) {
            return Ok(());
        }
        let result = self
            .actor
            .as_ref()
            .map_or(Ok(()), |b| b.charge(actor.as_str()))
            .and_then(|()| self.host.as_ref().map_or(Ok(()), |b| b.charge(host)));
        self.count(result)
    }

    fn is_own(&self, host: &str) -> bool {
        self.own_hosts.iter().any(|own| own == host)
    }

    fn count(&self, result: Result<(), RateLimited>) -> Result<(), RateLimited> {
        if let Err(limited) = &result {
            self.limited
                .with_label_values(&[limited.scope.as_str()])
                .inc();
        }
        result
    }

    #[cfg(test)]
    fn prune_now(&self) {
        for budget in [&self.host, &self.actor, &self.key_fetch]
            .into_iter()
            .flatten()
        {
            budget.prune();
        }
    }

    #[cfg(test)]
    fn keys(&self) -> (usize, usize) {
        let len = |b: &Option<Budget>| b.as_ref().map_or(0, |b| b.len());
        (len(&self.host), len(&self.actor))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn limits(pairs: &[(&str, &str)], prune: Duration) -> (InboxRateLimits, Metrics) {
        let mut env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        env.insert(
            "FEDIBRIDGE__FEDERATION__BASE_URL".into(),
            "https://fedi.platform.example".into(),
        );
        env.insert(
            "FEDIBRIDGE__FEDERATION__DOMAIN".into(),
            "platform.example".into(),
        );
        let settings = Settings::load_with_env(None, Some(env)).expect("settings");
        let metrics = Metrics::new().expect("metrics");
        (
            InboxRateLimits::with_prune_interval(&settings, &metrics, prune),
            metrics,
        )
    }

    fn actor(host: &str, name: &str) -> Url {
        Url::parse(&format!("https://{host}/users/{name}")).expect("url")
    }

    #[test]
    fn a_host_over_its_burst_is_refused_with_a_retry_after_and_others_are_not() {
        let (limits, metrics) = limits(
            &[
                ("FEDIBRIDGE__INBOX__HOST_ACTIVITIES_PER_MINUTE", "1"),
                ("FEDIBRIDGE__INBOX__HOST_BURST", "3"),
            ],
            PRUNE_INTERVAL,
        );
        for n in 0..3 {
            let who = actor("flood.example", &format!("a{n}"));
            limits
                .charge_activity("flood.example", &who)
                .expect("within the burst");
        }
        let who = actor("flood.example", "a9");
        let refused = limits
            .charge_activity("flood.example", &who)
            .expect_err("over the burst");
        assert_eq!(refused.scope, LimitScope::Host);
        // One request per minute: the next one is about a minute away.
        assert!(
            (55..=60).contains(&refused.retry_after_secs()),
            "{refused:?}"
        );
        // Refused again before any charge, on the fast path.
        assert_eq!(
            limits
                .check_not_refused("flood.example", &who)
                .map_err(|r| r.scope),
            Err(LimitScope::Host)
        );
        limits
            .charge_activity("calm.example", &actor("calm.example", "b"))
            .expect("another host has its own budget");
        assert!(
            metrics
                .render()
                .contains(r#"fedibridge_inbox_rate_limited_total{scope="host"} 2"#),
            "{}",
            metrics.render()
        );
    }

    #[test]
    fn an_actor_over_its_burst_leaves_its_neighbours_their_budget() {
        let (limits, _) = limits(
            &[
                ("FEDIBRIDGE__INBOX__ACTOR_ACTIVITIES_PER_MINUTE", "1"),
                ("FEDIBRIDGE__INBOX__ACTOR_BURST", "2"),
            ],
            PRUNE_INTERVAL,
        );
        let eve = actor("remote.example", "eve");
        for _ in 0..2 {
            limits
                .charge_activity("remote.example", &eve)
                .expect("burst");
        }
        assert_eq!(
            limits
                .charge_activity("remote.example", &eve)
                .map_err(|r| r.scope),
            Err(LimitScope::Actor)
        );
        limits
            .charge_activity("remote.example", &actor("remote.example", "bob"))
            .expect("bob has his own budget");
    }

    #[test]
    fn our_own_hosts_and_disabled_limits_are_never_refused() {
        let (limits, _) = limits(
            &[
                ("FEDIBRIDGE__INBOX__HOST_ACTIVITIES_PER_MINUTE", "1"),
                ("FEDIBRIDGE__INBOX__HOST_BURST", "1"),
                ("FEDIBRIDGE__INBOX__ACTOR_ACTIVITIES_PER_MINUTE", "0"),
            ],
            PRUNE_INTERVAL,
        );
        for host in ["fedi.platform.example", "platform.example"] {
            for _ in 0..5 {
                limits
                    .charge_activity(host, &actor(host, "x"))
                    .expect("own host");
                limits.charge_key_fetch(host).expect("own host");
            }
        }
        assert!(limits.actor.is_none());
        assert_eq!(limits.keys(), (0, 0));
    }

    #[test]
    fn a_flood_of_distinct_hosts_is_pruned_once_their_state_is_fresh_again() {
        // 60,000 a minute: one request's trace is gone after a millisecond.
        let (limits, metrics) = limits(
            &[
                ("FEDIBRIDGE__INBOX__HOST_ACTIVITIES_PER_MINUTE", "60000"),
                ("FEDIBRIDGE__INBOX__HOST_BURST", "1"),
                ("FEDIBRIDGE__INBOX__ACTOR_ACTIVITIES_PER_MINUTE", "60000"),
                ("FEDIBRIDGE__INBOX__ACTOR_BURST", "1"),
            ],
            Duration::ZERO,
        );
        for n in 0..5_000 {
            let host = format!("h{n}.example");
            limits.charge_activity(&host, &actor(&host, "a")).ok();
        }
        assert!(limits.keys().0 > 0);
        std::thread::sleep(Duration::from_millis(20));
        limits.prune_now();
        assert_eq!(limits.keys(), (0, 0));
        assert!(
            metrics
                .render()
                .contains(r#"fedibridge_inbox_rate_limit_keys{scope="host"} 0"#)
        );
        // With a zero interval every charge prunes first: the map never holds more than the
        // keys of the last instant.
        std::thread::sleep(Duration::from_millis(20));
        limits
            .charge_activity("last.example", &actor("last.example", "a"))
            .expect("fresh");
        assert_eq!(limits.keys(), (1, 1));
    }
}
