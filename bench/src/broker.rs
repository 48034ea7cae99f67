//! Raw lapin against the same broker: pre-loading queues with publisher confirms and the
//! calibration drain (prefetch 500, one ack per message) that event ingest is judged by.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
};

use crate::error::Error;

/// Persistent delivery mode, as the platform publishes its events.
const PERSISTENT: u8 = 2;
/// Confirms awaited per window while pre-loading (the research note's calibration setting).
const CONFIRM_WINDOW: usize = 1_000;

/// One message to publish: routing key, message id and body.
pub struct Message {
    /// Routing key (the event type for the platform's topic exchange).
    pub routing_key: String,
    /// AMQP message id (the event id).
    pub message_id: String,
    /// The JSON envelope.
    pub body: Vec<u8>,
}

/// Opens a connection named `name`.
pub async fn connect(url: &str, name: &str) -> Result<Connection, Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Ok(Connection::connect(url, properties).await?)
}

/// Publishes every message persistently to `exchange` with confirms awaited in windows of
/// [`CONFIRM_WINDOW`]; returns how long it took (the confirmed publish rate's denominator).
pub async fn preload(
    connection: &Connection,
    exchange: &str,
    messages: impl Iterator<Item = Message>,
) -> Result<(u64, Duration), Error> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut in_window = 0usize;
    for message in messages {
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_message_id(message.message_id.into());
        channel
            .basic_publish(
                exchange.into(),
                message.routing_key.into(),
                BasicPublishOptions::default(),
                &message.body,
                properties,
            )
            .await?;
        sent += 1;
        in_window += 1;
        if in_window == CONFIRM_WINDOW {
            confirm_all(&channel).await?;
            in_window = 0;
        }
    }
    confirm_all(&channel).await?;
    let elapsed = started.elapsed();
    let _ = channel.close(200, "preloaded".into()).await;
    Ok((sent, elapsed))
}

async fn confirm_all(channel: &Channel) -> Result<(), Error> {
    let returned = channel.wait_for_confirms().await?;
    if returned.is_empty() {
        Ok(())
    } else {
        Err(Error::Setup(format!(
            "{} message(s) were returned by the broker while pre-loading",
            returned.len()
        )))
    }
}

/// Declares a durable, otherwise plain queue (for the raw calibration).
pub async fn declare_plain_queue(connection: &Connection, queue: &str) -> Result<(), Error> {
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let _ = channel.close(200, "declared".into()).await;
    Ok(())
}

/// Ready messages in `queue` (passive declare: fails if the queue does not exist).
pub async fn depth(connection: &Connection, queue: &str) -> Result<u32, Error> {
    let channel = connection.create_channel().await?;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let _ = channel.close(200, "inspected".into()).await;
    Ok(declared.message_count())
}

/// Deletes queues the run created, whatever they hold.
pub async fn delete_queues(connection: &Connection, queues: &[String]) -> Result<(), Error> {
    let channel = connection.create_channel().await?;
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    let _ = channel.close(200, "cleaned up".into()).await;
    Ok(())
}

/// The raw drain: consumes `expected` messages with `prefetch` and one ack per message,
/// doing nothing else with them; returns the time from the first to the last ack.
pub async fn drain(
    connection: &Connection,
    queue: &str,
    expected: u64,
    prefetch: u16,
    deadline: Duration,
) -> Result<(u64, Duration), Error> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "bench-raw-drain".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut acked = 0u64;
    let mut started = None;
    let limit = Instant::now() + deadline;
    while acked < expected {
        let next = tokio::time::timeout_at(limit.into(), consumer.next()).await;
        let Ok(Some(delivery)) = next else { break };
        let delivery = delivery?;
        started.get_or_insert_with(Instant::now);
        delivery.ack(BasicAckOptions::default()).await?;
        acked += 1;
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    let _ = channel.close(200, "drained".into()).await;
    Ok((acked, elapsed))
}

/// Messages per second, or 0 when nothing was timed.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}
