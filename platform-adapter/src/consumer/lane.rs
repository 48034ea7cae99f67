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
pub(crate) async fn run<S: EventSink>(
    context: Arc<LaneContext<S>>,
    mut inbox: mpsc::Receiver<Work>,
) {
    while let Some(work) = inbox.recv().await {
        if let Err(error) = settle(&context, work).await {
            // Stop here: acking later deliveries of this lane would let a later event of the
            // same user overtake the unsettled one when the broker redelivers it.
            tracing::warn!(%error, "could not settle a delivery; restarting the session");
            context.session.cancel();
            return;
        }
    }
}

async fn settle<S: EventSink>(context: &LaneContext<S>, work: Work) -> Result<(), Error> {
    match work {
        Work::Malformed(error, delivery) => {
            tracing::warn!(kind = %error.kind, reason = %error.reason, "dead-lettering a malformed message");
            dead_letter(context, &delivery, error.kind.as_str(), &error.reason).await?;
            ack(&delivery).await
        }
        Work::Event(event, delivery) => apply(context, *event, delivery).await,
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
                context.counters.add(match handled {
                    Handled::Applied => Count::Applied,
                    Handled::Duplicate => Count::Duplicate,
                    Handled::Ignored => Count::Ignored,
                });
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
