//! The platform's side of the broker in tests: topology names of one test's own, bulk
//! publishing with confirms, and a queue that collects what the bridge publishes.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
        QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable},
};
use platform_adapter::Topology;
use serde_json::Value;
use tokio::sync::Mutex;

/// Exchange and queue names unique to one test, so tests never see each other's messages.
#[derive(Debug, Clone)]
pub struct TopologyNames {
    /// The platform's events exchange.
    pub events_exchange: String,
    /// The bridge's events queue.
    pub events_queue: String,
    /// The bridge's exchange for messages to the platform.
    pub outbound_exchange: String,
}

impl TopologyNames {
    /// Fresh names.
    pub fn new() -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Self {
            events_exchange: format!("test.{tag}.events"),
            events_queue: format!("test.{tag}.bridge"),
            outbound_exchange: format!("test.{tag}.out"),
        }
    }

    /// The topology these names make.
    pub fn topology(&self) -> Topology {
        Topology::new(
            &self.events_exchange,
            &self.events_queue,
            &self.outbound_exchange,
        )
        .expect("valid names")
    }

    /// `FEDIBRIDGE__BROKER__…` overrides pointing a bridge at `url` with these names.
    pub fn settings(&self, url: &str) -> Vec<(&'static str, String)> {
        vec![
            ("FEDIBRIDGE__BROKER__URL", url.to_owned()),
            (
                "FEDIBRIDGE__BROKER__EVENTS_EXCHANGE",
                self.events_exchange.clone(),
            ),
            (
                "FEDIBRIDGE__BROKER__EVENTS_QUEUE",
                self.events_queue.clone(),
            ),
            (
                "FEDIBRIDGE__BROKER__OUTBOUND_EXCHANGE",
                self.outbound_exchange.clone(),
            ),
        ]
    }
}

impl Default for TopologyNames {
    fn default() -> Self {
        Self::new()
    }
}

/// Publishes `events` persistent to `exchange` (routing key = type, message id = id), all
/// in flight at once on one confirm channel, and returns once the broker confirmed each.
pub async fn publish_all(url: &str, exchange: &str, events: &[Value]) {
    let connection = platform_adapter::connection::connect(url, "test-platform-bulk")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    let mut confirms = Vec::with_capacity(events.len());
    for event in events {
        let kind = event["type"].as_str().unwrap_or("unknown");
        let id = event["id"].as_str().unwrap_or("no-id");
        let properties = BasicProperties::default()
            .with_message_id(id.into())
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let confirm = channel
            .basic_publish(
                exchange.into(),
                kind.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &serde_json::to_vec(event).expect("JSON"),
                properties,
            )
            .await
            .expect("publish");
        confirms.push(confirm);
    }
    for confirm in confirms {
        match confirm.await.expect("confirm") {
            Confirmation::Ack(None) => {}
            other => panic!("the broker did not take an event: {other:?}"),
        }
    }
    let _ = connection.close(200, "published".into()).await;
}

/// Declares `queue`, bound to `exchange` with `#`, that refuses every message: its length
/// limit is 0 and it overflows by rejecting, so the broker nacks whatever is routed only
/// to it.
pub async fn declare_refusing_queue(url: &str, exchange: &str, queue: &str) {
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let (connection, _) = bound_queue(url, exchange, queue, arguments).await;
    let _ = connection.close(200, "declared".into()).await;
}

/// Connects to `url` and declares `queue` (durable, with `arguments`) bound to `exchange`
/// with `#`.
async fn bound_queue(
    url: &str,
    exchange: &str,
    queue: &str,
    arguments: FieldTable,
) -> (Connection, Channel) {
    let connection = platform_adapter::connection::connect(url, "test-platform")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), durable, arguments)
        .await
        .expect("declare");
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    (connection, channel)
}

/// Deletes `queue`.
pub async fn delete_queue(url: &str, queue: &str) {
    let connection = platform_adapter::connection::connect(url, "test-platform-cleanup")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let _ = connection.close(200, "deleted".into()).await;
}

/// A queue bound to an exchange with `#`, consumed in the background: counts every
/// message it receives by message id (acknowledging each).
pub struct CollectingQueue {
    /// Message id → times received.
    received: Arc<Mutex<HashMap<String, u32>>>,
    connection: Connection,
    task: tokio::task::JoinHandle<()>,
}

impl CollectingQueue {
    /// Declares `queue` (durable), binds it to `exchange` and starts consuming.
    pub async fn start(url: &str, exchange: &str, queue: &str) -> Self {
        let (connection, channel) = bound_queue(url, exchange, queue, FieldTable::default()).await;
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "collector".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let received = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
        let counts = Arc::clone(&received);
        let task = tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map_or_else(|| "<no id>".to_owned(), |id| id.to_string());
                *counts.lock().await.entry(id).or_default() += 1;
                if delivery.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
            }
        });
        Self {
            received,
            connection,
            task,
        }
    }

    /// Message id → times received, so far.
    pub async fn received(&self) -> HashMap<String, u32> {
        self.received.lock().await.clone()
    }

    /// Stops consuming.
    pub async fn stop(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.connection.close(200, "done".into()),
        )
        .await;
        self.task.abort();
    }
}
