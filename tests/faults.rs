//! Fault injection: the broker and the database are restarted, crashed, cut off and made to
//! block while events, inbox requests, deliveries and outgoing messages are in flight. Each
//! test states its invariant first and checks it at the end.
//!
//! Every service restarted here is a disposable one of this test process
//! (`tests/common/disposable`), never the shared PostgreSQL or RabbitMQ. Tests that use the
//! RabbitMQ node hold its lease, so they run one after another; the others run alongside.
//! The tests need a multi-threaded runtime: starting and stopping services blocks.

#[path = "faults/consumption.rs"]
mod consumption;
#[path = "faults/fan_out.rs"]
mod fan_out;
#[path = "faults/inbox_burst.rs"]
mod inbox_burst;
#[path = "faults/relay.rs"]
mod relay;

use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it holds; panics after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
