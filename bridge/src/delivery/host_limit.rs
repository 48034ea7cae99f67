//! Concurrent requests per remote host, adapted to the host's answers: additive increase,
//! multiplicative decrease, as TCP's congestion window. A host that takes every request
//! while more wait for it is given one more concurrent request per round of answers, up to a
//! ceiling; one that fails, times out or asks us to slow down (408, 429, 5xx) gets half as
//! many, down to the configured floor. A fixed limit either starves a big instance that many
//! followers live on (its throughput is the limit over its round trip) or overloads a small
//! one.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::outcome::Outcome;

/// At most one halving per host in this long: the requests already in flight when a host
/// starts failing all fail together, and count as one signal.
const DECREASE_EVERY: Duration = Duration::from_secs(1);

/// What an answer says about the host's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// It took the request (2xx).
    Took,
    /// It is failing or overloaded (408, 429, 5xx, timeout, transport failure).
    Overloaded,
    /// Nothing about its capacity (a refusal, or nothing was sent).
    Neutral,
}

impl Signal {
    /// What `outcome` says.
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Delivered { .. } => Self::Took,
            Outcome::Retry { .. } => Self::Overloaded,
            _ => Self::Neutral,
        }
    }
}

/// The limits of the hosts this process has sent to recently.
#[derive(Debug)]
pub struct HostLimits {
    floor: usize,
    ceiling: usize,
    hosts: HashMap<String, Learned>,
}

#[derive(Debug, Clone, Copy)]
struct Learned {
    limit: f64,
    last_decrease: Option<Instant>,
    touched: Instant,
}

impl HostLimits {
    /// Limits between `floor` (also where every host starts) and `ceiling`.
    pub fn new(floor: usize, ceiling: usize) -> Self {
        let floor = floor.max(1);
        Self {
            floor,
            ceiling: ceiling.max(floor),
            hosts: HashMap::new(),
        }
    }

    /// Where every host starts.
    pub fn floor(&self) -> usize {
        self.floor
    }

    /// Concurrent requests `host` may have now.
    pub fn limit(&self, host: &str) -> usize {
        self.hosts.get(host).map_or(self.floor, |learned| {
            // Truncation is intended: the limit grows by whole requests.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let whole = learned.limit as usize;
            whole.clamp(self.floor, self.ceiling)
        })
    }

    /// Learns from one answer of `host`; `saturated` says whether the host was using its
    /// whole limit with more waiting (only then does a success show that it could take
    /// more).
    pub fn answered(&mut self, host: &str, signal: Signal, saturated: bool, now: Instant) {
        let floor = self.floor as f64;
        let ceiling = self.ceiling as f64;
        match signal {
            Signal::Neutral => {}
            Signal::Took if !saturated => {
                if let Some(learned) = self.hosts.get_mut(host) {
                    learned.touched = now;
                }
            }
            Signal::Took => {
                let learned = self.entry(host, now);
                learned.limit = (learned.limit + 1.0 / learned.limit).min(ceiling);
                learned.touched = now;
            }
            Signal::Overloaded => {
                let learned = self.entry(host, now);
                learned.touched = now;
                if learned
                    .last_decrease
                    .is_none_or(|at| now.duration_since(at) >= DECREASE_EVERY)
                {
                    learned.limit = (learned.limit / 2.0).max(floor);
                    learned.last_decrease = Some(now);
                }
            }
        }
    }

    /// Forgets hosts not heard from since `before` (every per-host record expires).
    pub fn expire(&mut self, before: Instant) {
        self.hosts.retain(|_, learned| learned.touched >= before);
    }

    fn entry(&mut self, host: &str, now: Instant) -> &mut Learned {
        let floor = self.floor as f64;
        self.hosts.entry(host.to_owned()).or_insert(Learned {
            limit: floor,
            last_decrease: None,
            touched: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_taking_every_request_while_more_wait_grows_one_per_round_to_the_ceiling() {
        let mut limits = HostLimits::new(8, 32);
        let now = Instant::now();
        assert_eq!(limits.limit("big.example"), 8);
        // A round of answers (about as many as the limit) adds one request.
        for _ in 0..9 {
            limits.answered("big.example", Signal::Took, true, now);
        }
        assert_eq!(limits.limit("big.example"), 9);
        for _ in 0..10_000 {
            limits.answered("big.example", Signal::Took, true, now);
        }
        assert_eq!(limits.limit("big.example"), 32, "never past the ceiling");
        assert_eq!(
            limits.limit("other.example"),
            8,
            "hosts do not share a limit"
        );
    }

    #[test]
    fn successes_below_the_limit_prove_nothing_and_change_nothing() {
        let mut limits = HostLimits::new(8, 32);
        let now = Instant::now();
        for _ in 0..1_000 {
            limits.answered("small.example", Signal::Took, false, now);
        }
        assert_eq!(limits.limit("small.example"), 8);
    }

    #[test]
    fn failures_halve_the_limit_once_per_second_down_to_the_floor() {
        let mut limits = HostLimits::new(4, 64);
        let start = Instant::now();
        for _ in 0..5_000 {
            limits.answered("h.example", Signal::Took, true, start);
        }
        assert_eq!(limits.limit("h.example"), 64);
        // A burst of failures of the requests in flight counts once.
        for _ in 0..20 {
            limits.answered("h.example", Signal::Overloaded, true, start);
        }
        assert_eq!(limits.limit("h.example"), 32);
        let later = start + DECREASE_EVERY;
        limits.answered("h.example", Signal::Overloaded, true, later);
        assert_eq!(limits.limit("h.example"), 16);
        for n in 2..10 {
            limits.answered(
                "h.example",
                Signal::Overloaded,
                true,
                start + DECREASE_EVERY * n,
            );
        }
        assert_eq!(limits.limit("h.example"), 4, "never below the floor");
        limits.answered(
            "h.example",
            Signal::Neutral,
            true,
            start + DECREASE_EVERY * 20,
        );
        assert_eq!(limits.limit("h.example"), 4);
    }

    #[test]
    fn hosts_not_heard_from_are_forgotten() {
        let mut limits = HostLimits::new(2, 8);
        let start = Instant::now();
        for _ in 0..100 {
            limits.answered("old.example", Signal::Took, true, start);
        }
        let later = start + Duration::from_secs(600);
        for _ in 0..100 {
            limits.answered("new.example", Signal::Took, true, later);
        }
        limits.expire(start + Duration::from_secs(1));
        assert_eq!(
            limits.limit("old.example"),
            2,
            "back to the floor once forgotten"
        );
        assert_eq!(limits.limit("new.example"), 8);
    }
}
