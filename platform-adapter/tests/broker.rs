//! The consumer, publisher and dead-letter tools against a real RabbitMQ.

mod support;

use std::{collections::HashSet, sync::Arc, time::Duration};

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use platform_adapter::{
    Consumer, ConsumerConfig, DeadLetters, Error, Publisher, ReplaySelection,
    connection::connect,
    events::{DecodeErrorKind, InboundEvent},
    headers,
};
use tokio_util::sync::CancellationToken;

use support::{
    MemorySink, TestBroker, amqp_url, broker_available, post_event, publish, publish_raw,
    wait_until,
};

const WAIT: Duration = Duration::from_secs(30);

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    status: platform_adapter::connection::BrokerStatus,
    counters: Arc<platform_adapter::ConsumerCounters>,
}

fn start(
    broker: &TestBroker,
    sink: Arc<MemorySink>,
    tune: impl FnOnce(&mut ConsumerConfig),
) -> Running {
    let mut config = ConsumerConfig::new(amqp_url(), broker.topology.clone());
    config.connection_name = broker.connection_name();
    config.retry_base_delay = Duration::from_millis(20);
    tune(&mut config);
    let consumer = Consumer::new(config, sink);
    let status = consumer.status();
    let counters = consumer.counters();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer.run(shutdown.clone()));
    Running {
        shutdown,
        task,
        status,
        counters,
    }
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(40), self.task)
            .await
            .expect("consumer stops within its grace period")
            .expect("consumer task");
        assert!(!self.status.is_connected());
    }
}

#[tokio::test]
async fn events_are_applied_once_and_duplicates_are_acked() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-platform");
    let sink = Arc::new(MemorySink::default());
    let running = start(&broker, Arc::clone(&sink), |_| {});

    let events: Vec<InboundEvent> = (0..20).map(|i| post_event("alice", i)).collect();
    for event in &events {
        publish(&publisher, &broker.topology, event).await;
    }
    for event in &events[..5] {
        publish(&publisher, &broker.topology, event).await;
    }
    assert!(wait_until(WAIT, || running.counters.snapshot().duplicate == 5).await);
    assert!(wait_until(WAIT, || sink.applied_count() == 20).await);
    let counters = running.counters.snapshot();
    assert_eq!(counters.received, 25);
    assert_eq!(counters.applied, 20);
    assert_eq!(counters.dead_lettered, 0);
    assert!(running.status.is_connected());
    assert_eq!(sink.applied.lock().expect("lock")[3], events[3]);

    running.stop().await;
    let letters = DeadLetters::open(&amqp_url(), broker.topology.clone())
        .await
        .expect("open");
    assert_eq!(letters.count().await.expect("count"), 0);
    letters.close().await;
    publisher.close().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn one_users_events_apply_in_order_while_users_run_concurrently() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-platform");
    let sink = Arc::new(MemorySink::with_delay(Duration::from_millis(2)));
    let running = start(&broker, Arc::clone(&sink), |c| c.lanes = 8);

    let users: Vec<String> = (0..8).map(|u| format!("user{u}")).collect();
    for seq in 0..40 {
        for user in &users {
            publish(&publisher, &broker.topology, &post_event(user, seq)).await;
        }
    }
    assert!(wait_until(WAIT, || sink.applied_count() == 320).await);
    for (user, seqs) in sink.order_by_user() {
        assert_eq!(seqs, (0..40).collect::<Vec<_>>(), "{user} out of order");
    }
    let concurrency = sink.max_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert!(concurrency > 1, "users never ran concurrently");

    running.stop().await;
    publisher.close().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn waiting_events_are_stored_in_batches_without_losing_order_or_failures() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-platform");
    let sink = Arc::new(MemorySink::default());
    {
        let mut script = sink.script.lock().expect("lock");
        script.permanent.insert("u0-50".into());
        script.transient.insert("u1-70".into(), 2);
    }
    // Everything waits in the queue before the consumer starts, so lanes find full batches.
    let users = ["u0", "u1", "u2"];
    for seq in 0..100 {
        for user in users {
            publish(&publisher, &broker.topology, &post_event(user, seq)).await;
        }
    }
    let running = start(&broker, Arc::clone(&sink), |c| {
        c.lanes = 2;
        c.max_batch = 16;
    });

    assert!(
        wait_until(WAIT, || sink.applied_count() == 299).await,
        "applied {}",
        sink.applied_count()
    );
    assert!(wait_until(WAIT, || running.counters.snapshot().dead_lettered == 1).await);
    let largest = sink.largest_batch();
    assert!((2..=16).contains(&largest), "largest batch {largest}");
    for (user, seqs) in sink.order_by_user() {
        let expected: Vec<usize> = (0..100).filter(|s| user != "u0" || *s != 50).collect();
        assert_eq!(seqs, expected, "{user} out of order or incomplete");
    }
    let counters = running.counters.snapshot();
    assert_eq!(counters.applied, 299);
    assert_eq!(
        counters.retried, 0,
        "a short failure is retried in its lane"
    );

    running.stop().await;
    publisher.close().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn max_batch_bounds_what_a_lane_offers_at_once() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-platform");
    let sink = Arc::new(MemorySink::default());
    for seq in 0..50 {
        publish(&publisher, &broker.topology, &post_event("solo", seq)).await;
    }
    let running = start(&broker, Arc::clone(&sink), |c| c.max_batch = 1);
    assert!(wait_until(WAIT, || sink.applied_count() == 50).await);
    assert_eq!(
        sink.largest_batch(),
        1,
        "max_batch = 1 offers one event at a time"
    );
    running.stop().await;
    publisher.close().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn malformed_messages_are_dead_lettered_with_reasons_and_the_stream_goes_on() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-platform");
    let sink = Arc::new(MemorySink::default());
    let running = start(&broker, Arc::clone(&sink), |_| {});

    let good = post_event("bob", 1);
    let good_json: serde_json::Value =
        serde_json::from_slice(&good.encode().expect("encode")).expect("json");
    let mut unknown = good_json.clone();
    unknown["type"] = "post.exploded".into();
    let mut future = good_json.clone();
    future["schema_version"] = 7.into();
    let mut missing = good_json.clone();
    missing["data"]
        .as_object_mut()
        .expect("data")
        .remove("text");

    let cases: Vec<(&str, Vec<u8>, DecodeErrorKind)> = vec![
        (
            "bad-json",
            b"{not json".to_vec(),
            DecodeErrorKind::Malformed,
        ),
        (
            "bad-type",
            serde_json::to_vec(&unknown).expect("bytes"),
            DecodeErrorKind::UnknownType,
        ),
        (
            "bad-version",
            serde_json::to_vec(&future).expect("bytes"),
            DecodeErrorKind::UnsupportedVersion,
        ),
        (
            "bad-schema",
            serde_json::to_vec(&missing).expect("bytes"),
            DecodeErrorKind::SchemaViolation,
        ),
    ];
    for (id, bytes, _) in &cases {
        publish_raw(&publisher, &broker.topology, "post.created", id, bytes).await;
    }
    publish(&publisher, &broker.topology, &good).await;
    publish(&publisher, &broker.topology, &post_event("bob", 2)).await;

    assert!(wait_until(WAIT, || sink.applied_count() == 2).await);
    assert!(wait_until(WAIT, || running.counters.snapshot().dead_lettered == 4).await);

    let letters = DeadLetters::open(&amqp_url(), broker.topology.clone())
        .await
        .expect("open");
    let listed = letters.list(100).await.expect("list");
    assert_eq!(listed.len(), 4);
    for (id, _, kind) in &cases {
        let letter = listed
            .iter()
            .find(|l| l.message_id.as_deref() == Some(*id))
            .unwrap_or_else(|| panic!("{id} not in the dead-letter queue"));
        assert_eq!(letter.kind.as_deref(), Some(kind.as_str()), "{id}");
        assert!(
            letter.reason.as_deref().is_some_and(|r| !r.is_empty()),
            "{id}"
        );
        assert_eq!(letter.routing_key, "post.created");
    }
    let schema = listed
        .iter()
        .find(|l| l.message_id.as_deref() == Some("bad-schema"))
        .expect("bad-schema");
    assert!(
        schema.reason.as_deref().expect("reason").contains("text"),
        "{schema:?}"
    );
    // Listing does not consume.
    assert_eq!(letters.count().await.expect("count"), 4);
    letters.close().await;

    running.stop().await;
    publisher.close().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn transient_failures_are_retried_until_applied() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-platform");
    let sink = Arc::new(MemorySink::default());
    // Enough failures to pass the in-lane retries twice, so the retry queue is used.
    sink.script
        .lock()
        .expect("lock")
        .transient
        .insert("carol-3".into(), 7);
    let running = start(&broker, Arc::clone(&sink), |c| c.in_lane_retries = 2);

    for seq in 0..10 {
        publish(&publisher, &broker.topology, &post_event("carol", seq)).await;
    }
    assert!(
        wait_until(WAIT, || sink.applied_count() == 10).await,
        "applied {}",
        sink.applied_count()
    );
    let ids: HashSet<String> = sink.applied_ids().into_iter().collect();
    assert_eq!(ids.len(), 10);
    let counters = running.counters.snapshot();
    assert!(counters.retried >= 2, "{counters:?}");
    assert_eq!(counters.dead_lettered, 0);

    running.stop().await;
    publisher.close().await;
    broker.cleanup().await;
}

/// Closes the broker side of the connection named `name`, as an operator or a failover would.
async fn kill_connection(name: &str) -> bool {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let Ok(list) = std::process::Command::new("rabbitmqctl")
            .args([
                "list_connections",
                "pid",
                "client_properties",
                "--no-table-headers",
                "-q",
            ])
            .output()
        else {
            return false;
        };
        let text = String::from_utf8_lossy(&list.stdout);
        let pids: Vec<String> = text
            .lines()
            .filter(|line| line.contains(&name))
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect();
        let mut killed = false;
        for pid in pids {
            let status = std::process::Command::new("rabbitmqctl")
                .args(["close_connection", &pid, "killed by test"])
                .status();
            killed |= status.is_ok_and(|s| s.success());
        }
        killed
    })
    .await
    .expect("rabbitmqctl task")
}

#[tokio::test]
async fn a_killed_connection_loses_nothing_and_applies_everything_once() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-platform");
    let sink = Arc::new(MemorySink::with_delay(Duration::from_micros(300)));
    let running = start(&broker, Arc::clone(&sink), |c| c.prefetch = 64);

    let users: Vec<String> = (0..20).map(|u| format!("u{u}")).collect();
    let total = 3000;
    let publishing = {
        let publisher = Arc::new(publisher);
        let topology = broker.topology.clone();
        let users = users.clone();
        let task_publisher = Arc::clone(&publisher);
        let task = tokio::spawn(async move {
            for seq in 0..total / users.len() {
                for user in &users {
                    publish(&task_publisher, &topology, &post_event(user, seq)).await;
                }
            }
        });
        (publisher, task)
    };

    assert!(wait_until(WAIT, || sink.applied_count() >= 300).await);
    if !kill_connection(&broker.connection_name()).await {
        eprintln!("SKIPPED: rabbitmqctl could not close the consumer's connection");
        running.stop().await;
        publishing.1.await.expect("publisher");
        broker.cleanup().await;
        return;
    }
    assert!(wait_until(WAIT, || running.counters.snapshot().reconnects >= 1).await);
    publishing.1.await.expect("publisher");
    assert!(
        wait_until(Duration::from_secs(90), || sink.applied_count() == total).await,
        "applied {} of {total}",
        sink.applied_count()
    );
    assert!(wait_until(WAIT, || running.status.is_connected()).await);
    let ids: HashSet<String> = sink.applied_ids().into_iter().collect();
    assert_eq!(ids.len(), total, "an event was applied twice");
    for (user, seqs) in sink.order_by_user() {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{user} out of order: {seqs:?}"
        );
    }
    let counters = running.counters.snapshot();
    assert_eq!(counters.applied, total as u64);
    assert_eq!(counters.dead_lettered, 0);

    running.stop().await;
    publishing.0.close().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn permanent_failures_are_dead_lettered_and_can_be_replayed() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-platform");
    let sink = Arc::new(MemorySink::default());
    sink.script
        .lock()
        .expect("lock")
        .permanent
        .insert("dave-1".into());
    sink.script
        .lock()
        .expect("lock")
        .permanent
        .insert("dave-2".into());
    let running = start(&broker, Arc::clone(&sink), |_| {});

    for seq in 0..4 {
        publish(&publisher, &broker.topology, &post_event("dave", seq)).await;
    }
    assert!(wait_until(WAIT, || sink.applied_count() == 2).await);
    assert!(wait_until(WAIT, || running.counters.snapshot().dead_lettered == 2).await);

    let letters = DeadLetters::open(&amqp_url(), broker.topology.clone())
        .await
        .expect("open");
    let listed = letters.list(10).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|l| l.kind.as_deref() == Some("rejected")
        && l.event_type.as_deref() == Some("post.created")
        && l.reason.as_deref() == Some("post belongs to an unknown user")));

    let replayed = letters
        .replay(&ReplaySelection::MessageIds(vec!["dave-2".into()]))
        .await
        .expect("replay one");
    assert_eq!(replayed, 1);
    assert!(wait_until(WAIT, || sink.applied_ids().contains(&"dave-2".to_owned())).await);
    assert_eq!(letters.count().await.expect("count"), 1);
    assert_eq!(
        letters
            .replay(&ReplaySelection::All)
            .await
            .expect("replay all"),
        1
    );
    assert!(wait_until(WAIT, || sink.applied_count() == 4).await);
    assert_eq!(letters.count().await.expect("count"), 0);
    letters.close().await;

    running.stop().await;
    publisher.close().await;
    broker.cleanup().await;
}

#[tokio::test]
async fn the_publisher_waits_for_confirms_and_reports_unroutable_messages() {
    if !broker_available().await {
        return;
    }
    let broker = TestBroker::new().await;
    let publisher = Publisher::new(amqp_url(), "fedibridge-test-bridge");
    let exchange = broker.topology.outbound_exchange.clone();

    // Nothing bound yet: the broker returns the message, and that is not a success.
    let result = publisher
        .publish(&exchange, "like.added", "m-0", b"{}", &[])
        .await;
    assert!(matches!(result, Err(Error::NotConfirmed(_))), "{result:?}");

    let connection = connect(&amqp_url(), "fedibridge-test-platform")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let queue = format!("t.{}.platform-inbox", broker.suffix);
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "like.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");

    let example = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/outbound/like.added.json"
    ))
    .expect("example");
    let event = platform_adapter::events::decode_outbound(&example).expect("decode");
    publisher
        .publish_event(&exchange, &event)
        .await
        .expect("confirmed");
    publisher
        .publish(
            &exchange,
            "like.removed",
            "m-1",
            b"{}",
            &[(headers::REASON, "just testing")],
        )
        .await
        .expect("confirmed");

    let first = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("a message");
    assert_eq!(first.delivery.routing_key.as_str(), "like.added");
    assert_eq!(first.delivery.properties.delivery_mode(), &Some(2));
    assert_eq!(
        first
            .delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(
        first
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|c| c.as_str()),
        Some(event.id.as_str())
    );
    assert_eq!(
        platform_adapter::events::decode_outbound(&first.delivery.data).expect("decode"),
        event
    );

    // A publish to an exchange that does not exist closes the channel; the next publish
    // reconnects by itself.
    let missing = publisher
        .publish("t.no-such-exchange", "x", "m-2", b"{}", &[])
        .await;
    assert!(missing.is_err());
    publisher
        .publish(&exchange, "like.added", "m-3", b"{}", &[])
        .await
        .expect("publisher recovered");

    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    let _ = connection.close(200, "done".into()).await;
    publisher.close().await;
    broker.cleanup().await;
}
