//! One lane: handles its deliveries strictly one after another, so events with the same
//! order key (always routed to the same lane) take effect in order.

use std::{sync::Arc, time::Duration};

use lapin::{
    BasicProperties, Channel,
    message::Delivery,
    options::BasicAckOptions,
    types::{AMQPValue, LongString},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    ConsumerConfig,
    counters::{ConsumerCounters, Count},
};
use crate::{
    Error,
    events::{DecodeError, InboundEvent},
    headers,
    publisher::publish_confirmed,
    sink::{EventSink, Handled, SinkError},
};

/// Longest reason written into a dead-letter header.
const REASON_MAX_CHARS: usize = 1_000;
/// `x-fedibridge-error` for events the sink rejected permanently.
pub(crate) const REJECTED: &str = "rejected";

/// A delivery and what decoding made of it.
pub(crate) enum Work {
    /// A valid event for the sink.
    Event(Box<InboundEvent>, Delivery),
    /// A message that broke the contract.
    Malformed(DecodeError, Delivery),
}

/// What every lane of one session shares.
pub(crate) struct LaneContext<S> {
    pub(crate) config: Arc<ConsumerConfig>,
    pub(crate) sink: Arc<S>,
    pub(crate) counters: Arc<ConsumerCounters>,
    /// Confirm-mode channel for dead letters and retries.
    pub(crate) publish: Channel,
    /// Cancelled by a lane that could not settle a delivery: the session must restart so the
    /// broker redelivers what is unacknowledged.
    pub(crate) session: CancellationToken,
}

/// Runs until the sender side is dropped, or a delivery cannot be settled.
///
/// Whatever is already waiting in the lane when it picks up work is settled as one batch:
/// the sink may store consecutive events in one transaction, which is what makes a busy
/// lane fast (one commit, one round of acknowledgements, instead of one per event).
pub(crate) async fn run<S: EventSink>(
    context: Arc<LaneContext<S>>,
    mut inbox: mpsc::Receiver<Work>,
) {
    let max_batch = context.config.max_batch.max(1);
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match inbox.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        if let Err(error) = settle_batch(&context, batch).await {
            // Stop here: acking later deliveries of this lane would let a later event of the
            // same user overtake the unsettled one when the broker redelivers it.
            tracing::warn!(%error, "could not settle a delivery; restarting the session");
            context.session.cancel();
            return;
        }
    }
}

/// Settles a batch in order: runs of valid events go to the sink together, a malformed
/// message is dead-lettered where it stands.
async fn settle_batch<S: EventSink>(
    context: &LaneContext<S>,
    batch: Vec<Work>,
) -> Result<(), Error> {
    let mut run: Vec<(InboundEvent, Delivery)> = Vec::new();
    for work in batch {
        match work {
            Work::Event(event, delivery) => run.push((*event, delivery)),
            Work::Malformed(error, delivery) => {
                settle_events(context, std::mem::take(&mut run)).await?;
                tracing::warn!(kind = %error.kind, reason = %error.reason, "dead-lettering a malformed message");
                dead_letter(context, &delivery, error.kind.as_str(), &error.reason).await?;
                ack(&delivery).await?;
            }
        }
    }
    settle_events(context, run).await
}

/// Hands consecutive events to the sink as one batch, acknowledges what it stored, and
/// settles the rest one at a time (which is where retries and dead-lettering happen).
async fn settle_events<S: EventSink>(
    context: &LaneContext<S>,
    run: Vec<(InboundEvent, Delivery)>,
) -> Result<(), Error> {
    let (events, deliveries): (Vec<InboundEvent>, Vec<Delivery>) = run.into_iter().unzip();
    let events = Arc::new(events);
    if events.is_empty() {
        return Ok(());
    }
    // A batch of one too: the sink's batch path is where it may skip work it can prove has
    // no effect, and that must not depend on how the broker happened to split the stream.
    let results = context.sink.handle_batch(Arc::clone(&events)).await;
    let mut settled = 0;
    let mut stored = Vec::with_capacity(results.len());
    for (result, delivery) in results.into_iter().zip(&deliveries) {
        match result {
            Ok(handled) => context.counters.add(count(handled)),
            Err(SinkError::Permanent(reason)) => {
                tracing::warn!(event = %events[settled].id, %reason, "sink rejected an event; dead-lettering it");
                dead_letter(context, delivery, REJECTED, &reason).await?;
            }
            // From here on, one at a time: the retry path keeps this user's order.
            Err(SinkError::Transient(_)) => break,
        }
        stored.push(delivery);
        settled += 1;
    }
    // Acknowledgements have no answer from the broker; sending them together costs one
    // trip through the connection's writer instead of one each.
    futures_util::future::try_join_all(stored.into_iter().map(ack)).await?;
    for (event, delivery) in events.iter().zip(deliveries).skip(settled) {
        apply(context, event.clone(), delivery).await?;
    }
    Ok(())
}

fn count(handled: Handled) -> Count {
    match handled {
        Handled::Applied => Count::Applied,
        Handled::Duplicate => Count::Duplicate,
        Handled::Ignored => Count::Ignored,
    }
}

async fn apply<S: EventSink>(
    context: &LaneContext<S>,
    event: InboundEvent,
    delivery: Delivery,
) -> Result<(), Error> {
    let mut failures = 0u32;
    loop {
        match context.sink.handle(event.clone()).await {
            Ok(handled) => {
                context.counters.add(count(handled));
                return ack(&delivery).await;
            }
            Err(SinkError::Permanent(reason)) => {
                tracing::warn!(event = %event.id, %reason, "sink rejected an event; dead-lettering it");
                dead_letter(context, &delivery, REJECTED, &reason).await?;
                return ack(&delivery).await;
            }
            Err(SinkError::Transient(reason)) => {
                failures += 1;
                // A short blip is retried here, holding the lane, which keeps this user's
                // events in order; a longer outage goes to the retry queue so one stuck
                // event cannot hold its lane forever.
                if failures <= context.config.in_lane_retries && !context.session.is_cancelled() {
                    tracing::debug!(event = %event.id, %reason, failures, "sink failed; retrying in lane");
                    tokio::time::sleep(context.config.retry_delay(failures)).await;
                    continue;
                }
                tracing::warn!(event = %event.id, %reason, "sink failed; sending the event to the retry queue");
                retry_later(context, &delivery).await?;
                return ack(&delivery).await;
            }
        }
    }
}

async fn ack(delivery: &Delivery) -> Result<(), Error> {
    delivery.ack(BasicAckOptions::default()).await?;
    Ok(())
}

/// Publishes a copy to the dead-letter exchange with the reason, confirmed.
async fn dead_letter<S>(
    context: &LaneContext<S>,
    delivery: &Delivery,
    kind: &str,
    reason: &str,
) -> Result<(), Error> {
    let reason: String = reason.chars().take(REASON_MAX_CHARS).collect();
    let routing_key =
        headers::original_routing_key(&delivery.properties, delivery.routing_key.as_str());
    let mut table = headers::table(&delivery.properties);
    table.insert(headers::REASON.into(), long(&reason));
    table.insert(headers::ERROR.into(), long(kind));
    table.insert(headers::ROUTING_KEY.into(), long(&routing_key));
    let properties = copy_properties(&delivery.properties).with_headers(table);
    publish_confirmed(
        &context.publish,
        &context.config.topology.dead_letter_exchange(),
        &routing_key,
        &delivery.data,
        properties,
    )
    .await?;
    context.counters.add(Count::DeadLettered);
    Ok(())
}

/// Publishes a copy to the retry queue with one more attempt counted, confirmed.
async fn retry_later<S>(context: &LaneContext<S>, delivery: &Delivery) -> Result<(), Error> {
    let attempt = headers::count(&delivery.properties, headers::ATTEMPT).unwrap_or(0) + 1;
    let routing_key =
        headers::original_routing_key(&delivery.properties, delivery.routing_key.as_str());
    let mut table = headers::table(&delivery.properties);
    table.insert(
        headers::ATTEMPT.into(),
        AMQPValue::LongLongInt(i64::from(attempt)),
    );
    table.insert(headers::ROUTING_KEY.into(), long(&routing_key));
    let delay = context.config.retry_delay(attempt);
    let properties = copy_properties(&delivery.properties)
        .with_headers(table)
        .with_expiration(delay.as_millis().to_string().into());
    publish_confirmed(
        &context.publish,
        "",
        &context.config.topology.retry_queue(),
        &delivery.data,
        properties,
    )
    .await?;
    context.counters.add(Count::Retried);
    Ok(())
}

/// The original message id and type survive the hop; expiration does not (a retry sets its
/// own).
fn copy_properties(original: &BasicProperties) -> BasicProperties {
    let mut properties = BasicProperties::default();
    if let Some(id) = original.message_id() {
        properties = properties.with_message_id(id.clone());
    }
    if let Some(timestamp) = original.timestamp() {
        properties = properties.with_timestamp(*timestamp);
    }
    if let Some(app) = original.app_id() {
        properties = properties.with_app_id(app.clone());
    }
    properties
}

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// Capped exponential delay: `base * 2^(attempt-1)`, at most `cap`.
pub(crate) fn exponential(base: Duration, cap: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap)
}
