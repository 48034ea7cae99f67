//! Looking into the dead-letter queue and sending its messages back for another try.

use lapin::{
    BasicProperties, Channel, Connection,
    message::Delivery,
    options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions},
    types::FieldTable,
};

use crate::{
    Error,
    connection::connect,
    headers,
    publisher::{confirm_channel, publish_confirmed},
    topology::{Topology, short},
};

/// One parked message, as a person needs to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message id property (the platform's event id, when it set one).
    pub message_id: Option<String>,
    /// The `type` field of the payload, if it has one.
    pub event_type: Option<String>,
    /// `x-fedibridge-error`: which rule it broke.
    pub kind: Option<String>,
    /// `x-fedibridge-reason`: what exactly was wrong.
    pub reason: Option<String>,
    /// The routing key it was first published with.
    pub routing_key: String,
    /// The message body, unchanged.
    pub payload: Vec<u8>,
}

/// Which parked messages to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelection {
    /// Everything in the queue when the replay starts.
    All,
    /// Only messages with one of these message ids.
    MessageIds(Vec<String>),
}

/// A connection to the dead-letter queue.
pub struct DeadLetters {
    connection: Connection,
    channel: Channel,
    topology: Topology,
}

impl DeadLetters {
    /// Connects; `topology` names the queue and the exchange replays go to.
    pub async fn open(url: &str, topology: Topology) -> Result<Self, Error> {
        let connection = connect(url, "fedibridge-dead-letters").await?;
        let channel = confirm_channel(&connection).await?;
        Ok(Self {
            connection,
            channel,
            topology,
        })
    }

    /// How many messages are parked.
    pub async fn count(&self) -> Result<u32, Error> {
        let queue = self
            .channel
            .queue_declare(
                short(&self.topology.dead_letter_queue())?,
                QueueDeclareOptions::default().passive(),
                FieldTable::default(),
            )
            .await?;
        Ok(queue.message_count())
    }

    /// Up to `limit` parked messages, oldest first. Nothing is removed: every message
    /// fetched is returned to the queue before this returns.
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, Error> {
        let total = usize::try_from(self.count().await?).unwrap_or(usize::MAX);
        let mut letters = Vec::new();
        let mut last_tag = None;
        while letters.len() < limit.min(total) {
            let Some(message) = self.get().await? else {
                break;
            };
            last_tag = Some(message.delivery_tag);
            letters.push(describe(&message));
        }
        if let Some(tag) = last_tag {
            self.requeue_up_to(tag, u32::try_from(total).unwrap_or(u32::MAX))
                .await?;
        }
        Ok(letters)
    }

    /// Republishes the selected messages to the events exchange with their original routing
    /// key (confirmed), then removes them from the queue. Returns how many were replayed.
    pub async fn replay(&self, selection: &ReplaySelection) -> Result<usize, Error> {
        // Bounded by the count at the start: a replayed message that fails again lands back
        // in this queue and must not be replayed twice in one call.
        let total = self.count().await?;
        let mut replayed = 0;
        let mut kept_tag = None;
        for _ in 0..total {
            let Some(message) = self.get().await? else {
                break;
            };
            let letter = describe(&message);
            let selected = match selection {
                ReplaySelection::All => true,
                ReplaySelection::MessageIds(ids) => letter
                    .message_id
                    .as_ref()
                    .is_some_and(|id| ids.contains(id)),
            };
            if !selected {
                kept_tag = Some(message.delivery_tag);
                continue;
            }
            publish_confirmed(
                &self.channel,
                &self.topology.events_exchange,
                &letter.routing_key,
                &message.data,
                fresh_properties(&message.properties),
            )
            .await?;
            message.ack(BasicAckOptions::default()).await?;
            replayed += 1;
        }
        if let Some(tag) = kept_tag {
            let kept = total.saturating_sub(u32::try_from(replayed).unwrap_or(u32::MAX));
            self.requeue_up_to(tag, kept).await?;
        }
        Ok(replayed)
    }

    /// Returns every unsettled message up to `tag` to the queue, then waits (briefly) until
    /// the queue holds at least `expected` again: the broker requeues asynchronously, and a
    /// count right after a listing or replay must not come out short.
    async fn requeue_up_to(&self, tag: u64, expected: u32) -> Result<(), Error> {
        self.channel
            .basic_nack(
                tag,
                BasicNackOptions {
                    multiple: true,
                    requeue: true,
                },
            )
            .await?;
        for _ in 0..200 {
            if self.count().await? >= expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// Closes the connection; anything fetched and not settled returns to the queue.
    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }

    async fn get(&self) -> Result<Option<Delivery>, Error> {
        let message = self
            .channel
            .basic_get(
                short(&self.topology.dead_letter_queue())?,
                BasicGetOptions { no_ack: false },
            )
            .await?;
        Ok(message.map(|m| m.delivery))
    }
}

fn describe(delivery: &Delivery) -> DeadLetter {
    let event_type = serde_json::from_slice::<serde_json::Value>(&delivery.data)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
    DeadLetter {
        message_id: delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_owned()),
        event_type,
        kind: headers::text(&delivery.properties, headers::ERROR),
        reason: headers::text(&delivery.properties, headers::REASON),
        routing_key: headers::original_routing_key(
            &delivery.properties,
            delivery.routing_key.as_str(),
        ),
        payload: delivery.data.clone(),
    }
}

/// The original properties without the marks of its failed journey, so the replay is
/// judged afresh.
fn fresh_properties(original: &BasicProperties) -> BasicProperties {
    let mut table = FieldTable::default();
    for (name, value) in headers::table(original).inner() {
        let name = name.as_str();
        if !name.starts_with("x-fedibridge-")
            && !name.starts_with("x-death")
            && !name.starts_with("x-first-death")
            && !name.starts_with("x-last-death")
        {
            table.insert(name.into(), value.clone());
        }
    }
    let mut properties = BasicProperties::default().with_headers(table);
    if let Some(id) = original.message_id() {
        properties = properties.with_message_id(id.clone());
    }
    properties
}
