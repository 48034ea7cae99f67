//! Counts the bridge can export as metrics, without this crate choosing a metrics library.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since the consumer was created; shared with the bridge through an `Arc`.
#[derive(Debug, Default)]
pub struct ConsumerCounters {
    received: AtomicU64,
    applied: AtomicU64,
    duplicate: AtomicU64,
    ignored: AtomicU64,
    dead_lettered: AtomicU64,
    retried: AtomicU64,
    reconnects: AtomicU64,
}

/// One consistent-enough reading of [`ConsumerCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterSnapshot {
    /// Deliveries taken from the queue (redeliveries count again).
    pub received: u64,
    /// Events the sink applied.
    pub applied: u64,
    /// Events the sink had already applied.
    pub duplicate: u64,
    /// Events the sink chose not to apply.
    pub ignored: u64,
    /// Messages parked in the dead-letter queue (undecodable or permanently failed).
    pub dead_lettered: u64,
    /// Events sent to the retry queue after transient failures.
    pub retried: u64,
    /// Sessions started after the first (connection losses survived).
    pub reconnects: u64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    Received,
    Applied,
    Duplicate,
    Ignored,
    DeadLettered,
    Retried,
    Reconnect,
}

impl ConsumerCounters {
    pub(crate) fn add(&self, count: Count) {
        let counter = match count {
            Count::Received => &self.received,
            Count::Applied => &self.applied,
            Count::Duplicate => &self.duplicate,
            Count::Ignored => &self.ignored,
            Count::DeadLettered => &self.dead_lettered,
            Count::Retried => &self.retried,
            Count::Reconnect => &self.reconnects,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current totals.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            received: self.received.load(Ordering::Relaxed),
            applied: self.applied.load(Ordering::Relaxed),
            duplicate: self.duplicate.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }
}
