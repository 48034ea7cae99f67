//! How the delivery engine reads answers and schedules retries.

use std::time::Duration;

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// 410: the inbox (and its actor) are gone; stop sending there.
    Gone,
    /// Other 4xx (except 408 and 429): the receiver refuses this activity for good.
    Refused,
    /// 408, 429, 5xx, transport failures: try again later.
    Retry,
}

/// Classifies an HTTP status, as Mastodon and Lemmy do.
pub fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        408 | 429 => Verdict::Retry,
        400..=499 => Verdict::Refused,
        // Deliveries never follow redirects: a 3xx inbox is misconfigured, not transient.
        300..=399 => Verdict::Refused,
        _ => Verdict::Retry,
    }
}

/// First retry delay.
const BASE: Duration = Duration::from_secs(15);
/// Longest delay between two attempts.
const CAP: Duration = Duration::from_secs(6 * 3600);
/// Longest `Retry-After` honoured; a server asking for more is retried after this.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// Delay before attempt `attempts + 1`: 15 s, 45 s, 2¼ min, … ×3 up to 6 h, with jitter in
/// [50 %, 100 %] so that retries after an outage do not arrive together. `jitter` is a
/// fraction in [0, 1).
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let factor = 3u32.saturating_pow(attempts.min(12));
    let step = BASE.saturating_mul(factor).min(CAP);
    step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The delay to wait: the server's `Retry-After` when given (bounded), else the backoff.
pub fn next_delay(attempts: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    match retry_after {
        Some(wait) => wait.min(RETRY_AFTER_CAP).max(Duration::from_secs(1)),
        None => backoff(attempts, jitter),
    }
}

/// Failures in a row after which a host's circuit opens.
pub const BREAKER_THRESHOLD: i32 = 5;

/// How long a host's circuit stays open after `consecutive_failures` failures: 30 s,
/// doubling per further failure, at most an hour. After it, one probe goes through
/// (half-open); its success closes the circuit, its failure reopens it for longer.
pub fn breaker_cooldown(consecutive_failures: i32) -> Option<Duration> {
    if consecutive_failures < BREAKER_THRESHOLD {
        return None;
    }
    let over = u32::try_from(consecutive_failures - BREAKER_THRESHOLD)
        .unwrap_or(0)
        .min(7);
    Some(Duration::from_secs(30u64 << over).min(Duration::from_secs(3600)))
}

/// A cheap jitter source; retries need spread, not unpredictability.
pub fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 10_000) / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_mastodon() {
        assert_eq!(classify(200), Verdict::Delivered);
        assert_eq!(classify(202), Verdict::Delivered);
        assert_eq!(classify(410), Verdict::Gone);
        assert_eq!(classify(400), Verdict::Refused);
        assert_eq!(classify(401), Verdict::Refused);
        assert_eq!(classify(404), Verdict::Refused);
        assert_eq!(classify(301), Verdict::Refused);
        assert_eq!(classify(408), Verdict::Retry);
        assert_eq!(classify(429), Verdict::Retry);
        assert_eq!(classify(500), Verdict::Retry);
        assert_eq!(classify(503), Verdict::Retry);
    }

    #[test]
    fn backoff_grows_by_three_and_is_capped() {
        assert_eq!(
            backoff(0, 0.999_999),
            Duration::from_secs(15).mul_f64(0.999_999_5)
        );
        assert!(backoff(1, 0.0) == Duration::from_millis(22_500));
        assert!(backoff(3, 0.99) > backoff(2, 0.99));
        assert!(backoff(40, 0.99) <= CAP);
        assert!(backoff(40, 0.0) >= CAP / 2);
    }

    #[test]
    fn retry_after_wins_within_bounds() {
        assert_eq!(
            next_delay(0, Some(Duration::from_secs(120)), 0.5),
            Duration::from_secs(120)
        );
        assert_eq!(
            next_delay(0, Some(Duration::from_secs(10 * 86_400)), 0.5),
            RETRY_AFTER_CAP
        );
        assert_eq!(
            next_delay(0, Some(Duration::ZERO), 0.5),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn the_breaker_opens_after_the_threshold_and_backs_off() {
        assert_eq!(breaker_cooldown(4), None);
        assert_eq!(breaker_cooldown(5), Some(Duration::from_secs(30)));
        assert_eq!(breaker_cooldown(6), Some(Duration::from_secs(60)));
        assert_eq!(breaker_cooldown(100), Some(Duration::from_secs(3600)));
    }
}
