//! The outbox relay: publishes messages for the platform to its broker, in order, and marks
//! them sent only after the broker confirmed them.
//!
//! A crash between the confirm and the mark re-publishes those messages; their ids are
//! stable, so the platform recognises the repeats.

use std::time::Duration;

use platform_adapter::{Publisher, Topology, connection::Backoff};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{Database, now_millis, outbox},
    error::Error,
    settings::BrokerSettings,
};

/// Messages published per round.
const BATCH: i64 = 256;
/// Idle wait between polls of the outbox.
const IDLE: Duration = Duration::from_millis(200);
/// Wait after a batch that was not full: under a steady stream, polling again at once
/// would relay a handful of messages per round, and each round costs a scan of the outbox,
/// a confirm round trip and an UPDATE whatever its size. A few milliseconds more before the
/// platform hears of an interaction let a round carry tens of messages.
const LINGER: Duration = Duration::from_millis(10);

/// Publishes one batch; returns how many messages were confirmed and marked.
pub async fn relay_once(
    db: &Database,
    publisher: &Publisher,
    exchange: &str,
) -> Result<usize, Error> {
    let batch = db.run(|c| outbox::unpublished(c, BATCH)).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    // All publishes of a batch go out on one channel in id order (which keeps each user's
    // order); confirms are awaited together. Only the prefix before the first failure is
    // marked: anything after it is re-sent later, with the same ids.
    let sends = batch.iter().map(|m| {
        publisher.publish(
            exchange,
            &m.message_type,
            &m.message_id,
            m.payload.as_bytes(),
            &[],
        )
    });
    let results = futures_util::future::join_all(sends).await;
    let confirmed: Vec<i64> = batch
        .iter()
        .zip(&results)
        .take_while(|(_, r)| r.is_ok())
        .map(|(m, _)| m.id)
        .collect();
    let count = confirmed.len();
    if count > 0 {
        db.write(move |c| outbox::mark_published(c, &confirmed, now_millis()))
            .await?;
    }
    if let Some(Err(error)) = results.into_iter().find(Result::is_err) {
        return Err(error.into());
    }
    Ok(count)
}

/// Runs the relay until `shutdown`, reconnecting with backoff when the broker is away.
pub async fn run(db: Database, broker: BrokerSettings, shutdown: CancellationToken) {
    let url = broker.url.trim().to_owned();
    let publisher = Publisher::new(url.clone(), "fedibridge-relay");
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut declared = !broker.declare_topology;
    while !shutdown.is_cancelled() {
        if !declared {
            match Topology::new(
                &broker.events_exchange,
                &broker.events_queue,
                &broker.outbound_exchange,
            ) {
                Ok(topology) => match topology.declare_at(&url).await {
                    Ok(()) => declared = true,
                    Err(error) => tracing::warn!(%error, "relay: cannot declare the topology yet"),
                },
                Err(error) => {
                    tracing::error!(%error, "relay: invalid topology names; relay stopped");
                    return;
                }
            }
        }
        let wait = if declared {
            match relay_once(&db, &publisher, &broker.outbound_exchange).await {
                Ok(0) => IDLE,
                Ok(relayed) => {
                    backoff.reset();
                    if relayed < BATCH as usize {
                        LINGER
                    } else {
                        Duration::ZERO
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "relay: publishing failed; retrying");
                    backoff.next_delay()
                }
            }
        } else {
            backoff.next_delay()
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    publisher.close().await;
}
