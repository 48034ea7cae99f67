//! Shared fixtures for the broker tests: a unique topology per test, a platform-side
//! publisher, and an idempotent in-memory sink that records what it applied.

#![allow(dead_code)]

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::Utc;
use platform_adapter::{
    EventSink, Handled, InboundEvent, Publisher, SinkError, Topology,
    connection::connect,
    events::{
        Envelope, EventId, InboundPayload, InteractionPolicy, OrderKey, Post, PostId, UserId,
        Visibility,
    },
};

/// The broker tests use.
pub fn amqp_url() -> String {
    std::env::var("FEDIBRIDGE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Whether RabbitMQ is reachable; under `CI=true` an unreachable broker fails the test.
pub async fn broker_available() -> bool {
    let reachable = match connect(&amqp_url(), "fedibridge-test-probe").await {
        Ok(connection) => {
            let _ = connection.close(200, "probe".into()).await;
            true
        }
        Err(_) => false,
    };
    if reachable {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "RabbitMQ is required under CI=true but is not reachable at {}",
        amqp_url()
    );
    eprintln!("SKIPPED: RabbitMQ is not reachable (set CI=true to make this a failure)");
    false
}

/// A topology with names no other test uses, declared on the broker.
pub struct TestBroker {
    pub topology: Topology,
    pub suffix: String,
}

impl TestBroker {
    pub async fn new() -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let mut topology = Topology::new(
            format!("t.{suffix}.events"),
            format!("t.{suffix}.bridge"),
            format!("t.{suffix}.outbound"),
        )
        .expect("names");
        topology.max_retry_delay = Duration::from_millis(500);
        let connection = connect(&amqp_url(), "fedibridge-test-setup")
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        topology.declare(&channel).await.expect("declare");
        connection.close(200, "setup".into()).await.expect("close");
        Self { topology, suffix }
    }

    /// A connection name unique to this test, to find it on the broker.
    pub fn connection_name(&self) -> String {
        format!("fedibridge-test-{}", self.suffix)
    }

    pub async fn cleanup(self) {
        let connection = connect(&amqp_url(), "fedibridge-test-cleanup")
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        self.topology.delete(&channel).await.expect("delete");
        let _ = connection.close(200, "cleanup".into()).await;
    }
}

/// Publishes events the way the platform would.
pub async fn publish(publisher: &Publisher, topology: &Topology, event: &InboundEvent) {
    let bytes = event.encode().expect("encode");
    publisher
        .publish(
            &topology.events_exchange,
            event.routing_key(),
            event.id.as_str(),
            &bytes,
            &[],
        )
        .await
        .expect("publish");
}

/// Publishes raw bytes under a routing key.
pub async fn publish_raw(
    publisher: &Publisher,
    topology: &Topology,
    key: &str,
    id: &str,
    bytes: &[u8],
) {
    publisher
        .publish(&topology.events_exchange, key, id, bytes, &[])
        .await
        .expect("publish");
}

/// `post.created` number `seq` by `user`; its id is `{user}-{seq}`.
pub fn post_event(user: &str, seq: usize) -> InboundEvent {
    let user_id = UserId::new(user).expect("user id");
    Envelope::new(
        EventId::new(format!("{user}-{seq}")).expect("id"),
        Utc::now(),
        OrderKey::from(user_id.clone()),
        InboundPayload::PostCreated(Post {
            post_id: PostId::new(format!("p-{user}-{seq}")).expect("post id"),
            author_id: user_id,
            text: format!("post {seq}"),
            visibility: Visibility::Public,
            age_restricted: false,
            reply_to: None,
            quote_of: None,
            media: vec![],
            mentions: vec![],
            hashtags: vec![],
            content_warning: None,
            sensitive: false,
            language: Some("en".into()),
            reply_policy: InteractionPolicy::Everyone,
            quote_policy: InteractionPolicy::Everyone,
            created_via_api: false,
            created_at: Utc::now(),
            edited_at: None,
        }),
    )
}

/// The sequence number in an event id made by [`post_event`].
pub fn seq_of(event: &InboundEvent) -> usize {
    event
        .id
        .as_str()
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("seq")
}

/// Scripted failures for [`MemorySink`].
#[derive(Default)]
pub struct Script {
    /// Event id → how many more calls fail transiently.
    pub transient: HashMap<String, usize>,
    /// Event ids rejected permanently (once each: a replay succeeds).
    pub permanent: HashSet<String>,
}

/// An idempotent sink: remembers applied ids like a `processed_events` table would.
#[derive(Default)]
pub struct MemorySink {
    pub applied: Mutex<Vec<InboundEvent>>,
    seen: Mutex<HashSet<String>>,
    pub calls: AtomicUsize,
    pub script: Mutex<Script>,
    pub delay: Duration,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Size of every batch offered.
    pub batch_sizes: Mutex<Vec<usize>>,
}

impl MemorySink {
    pub fn with_delay(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    pub fn applied_count(&self) -> usize {
        self.applied.lock().expect("lock").len()
    }

    pub fn applied_ids(&self) -> Vec<String> {
        self.applied
            .lock()
            .expect("lock")
            .iter()
            .map(|e| e.id.as_str().to_owned())
            .collect()
    }

    /// Per order key, the sequence numbers in the order they were applied.
    pub fn order_by_user(&self) -> HashMap<String, Vec<usize>> {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for event in self.applied.lock().expect("lock").iter() {
            map.entry(event.order_key.as_str().to_owned())
                .or_default()
                .push(seq_of(event));
        }
        map
    }
}

impl EventSink for MemorySink {
    async fn handle(&self, event: InboundEvent) -> Result<Handled, SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let result = self.apply(event);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Applies in order and stops before the first transient failure, as a transaction
    /// that failed would leave the rest to be applied one at a time.
    async fn handle_batch(
        &self,
        events: Arc<Vec<InboundEvent>>,
    ) -> Vec<Result<Handled, SinkError>> {
        self.batch_sizes.lock().expect("lock").push(events.len());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let mut results = Vec::new();
        for event in events.iter() {
            // A scripted transient failure is left for the one-at-a-time path to count, so
            // the scripts mean the same with and without batches.
            let failing = self
                .script
                .lock()
                .expect("lock")
                .transient
                .get(event.id.as_str())
                .is_some_and(|left| *left > 0);
            if failing {
                break;
            }
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.apply(event.clone()) {
                Err(SinkError::Transient(_)) => break,
                result => results.push(result),
            }
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        results
    }
}

impl MemorySink {
    /// The largest batch offered so far.
    pub fn largest_batch(&self) -> usize {
        self.batch_sizes
            .lock()
            .expect("lock")
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
    }

    fn apply(&self, event: InboundEvent) -> Result<Handled, SinkError> {
        let id = event.id.as_str().to_owned();
        {
            let mut script = self.script.lock().expect("lock");
            if let Some(left) = script.transient.get_mut(&id)
                && *left > 0
            {
                *left -= 1;
                return Err(SinkError::Transient("database unavailable".into()));
            }
            if script.permanent.remove(&id) {
                return Err(SinkError::Permanent(
                    "post belongs to an unknown user".into(),
                ));
            }
        }
        // Checked and recorded under one lock, like a unique key in one transaction.
        let mut seen = self.seen.lock().expect("lock");
        if !seen.insert(id) {
            return Ok(Handled::Duplicate);
        }
        self.applied.lock().expect("lock").push(event);
        Ok(Handled::Applied)
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
