//! The platform contract over the real RabbitMQ: events in through the consumer, messages
//! out through the relay with publisher confirms, bad events to the dead-letter queue, and
//! a killed broker connection mid-stream losing and duplicating nothing.

use std::time::{Duration, Instant};

use bridge::db::schema;
use diesel::prelude::*;
use futures_util::StreamExt;
use integration_tests::{
    TestApp, TestDatabase, amqp_url, broker::TopologyNames, events, service_available,
    test_settings,
};
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use platform_adapter::{DeadLetters, Publisher};
use serde_json::Value;

async fn broker_up() -> bool {
    let up = platform_adapter::connection::probe(&amqp_url())
        .await
        .is_ok();
    service_available("RabbitMQ", up)
}

async fn spawn(db: &TestDatabase, names: &TopologyNames) -> TestApp {
    let broker = names.settings(&amqp_url());
    let overrides: Vec<(&str, &str)> = broker.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn(test_settings(db, &overrides)).await
}

async fn publish(publisher: &Publisher, names: &TopologyNames, event: &Value) {
    let bytes = serde_json::to_vec(event).expect("JSON");
    let kind = event["type"].as_str().unwrap_or("unknown");
    let id = event["id"].as_str().unwrap_or("no-id");
    publisher
        .publish(&names.events_exchange, kind, id, &bytes, &[])
        .await
        .expect("confirmed publish");
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(app: &TestApp, table: &'static str) -> i64 {
    app.db
        .run(move |c| {
            Ok(match table {
                "posts" => schema::posts::table.count().get_result(c)?,
                "activities" => schema::activities::table.count().get_result(c)?,
                "processed_events" => schema::processed_events::table.count().get_result(c)?,
                _ => schema::platform_outbox::table
                    .filter(schema::platform_outbox::published_at.is_null())
                    .count()
                    .get_result(c)?,
            })
        })
        .await
        .expect("count")
}

#[tokio::test]
async fn events_flow_in_and_interactions_flow_out() {
    if !broker_up().await {
        return;
    }
    let names = TopologyNames::new();
    let topology = names.topology();
    topology.declare_at(&amqp_url()).await.expect("topology");

    // The platform's side: a queue on the bridge's outbound exchange.
    let connection = platform_adapter::connection::connect(&amqp_url(), "test-platform")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let platform_queue = format!("{}.platform", names.events_queue);
    channel
        .queue_declare(
            platform_queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare");
    channel
        .queue_bind(
            platform_queue.as_str().into(),
            names.outbound_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut consumer = channel
        .basic_consume(
            platform_queue.as_str().into(),
            "test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");

    let db = TestDatabase::sqlite();
    let app = spawn(&db, &names).await;
    let publisher = Publisher::new(amqp_url(), "test-platform-publisher");
    publish(
        &publisher,
        &names,
        &events::eligible_user("b1", "u1", "dee"),
    )
    .await;
    publish(&publisher, &names, &events::sharing_on("b2", "u1")).await;
    // A malformed event: dead-lettered, the stream goes on.
    publisher
        .publish(
            &names.events_exchange,
            "post.created",
            "b-bad",
            b"{\"id\": 1}",
            &[],
        )
        .await
        .expect("publish");
    publish(
        &publisher,
        &names,
        &events::post(
            "b3",
            "post.created",
            "u1",
            "p1",
            "over the broker",
            "public",
        ),
    )
    .await;

    wait_until("the post to federate", Duration::from_secs(20), || async {
        app.ap_get("/posts/p1").await.status() == 200
    })
    .await;

    // The status message reached the platform, published by the relay with confirms.
    let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
        .await
        .expect("a message for the platform")
        .expect("stream open")
        .expect("delivery");
    let message: Value = serde_json::from_slice(&delivery.data).expect("JSON");
    assert_eq!(message["type"], "sharing.status_changed");
    assert_eq!(message["data"]["state"], "on");
    assert_eq!(delivery.routing_key.as_str(), "sharing.status_changed");
    assert_eq!(
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        message["id"].as_str()
    );
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    wait_until("the outbox to drain", Duration::from_secs(10), || async {
        count(&app, "unpublished").await == 0
    })
    .await;

    let letters = DeadLetters::open(&amqp_url(), topology.clone())
        .await
        .expect("dead letters");
    wait_until(
        "the bad event in the dead-letter queue",
        Duration::from_secs(10),
        || async { letters.count().await.unwrap_or(0) == 1 },
    )
    .await;
    let listed = letters.list(10).await.expect("list");
    assert_eq!(
        listed[0].kind.as_deref(),
        Some("schema_violation"),
        "{listed:?}"
    );
    assert!(listed[0].reason.is_some());
    letters.close().await;

    app.stop().await.expect("stop");
    publisher.close().await;
    let _ = channel
        .queue_delete(platform_queue.as_str().into(), Default::default())
        .await;
    let _ = topology.delete(&channel).await;
    let _ = connection.close(200, "done".into()).await;
}

fn kill_consumer_connection(queue: &str) -> bool {
    let name = format!("fedibridge-consumer-{queue}");
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
    let mut killed = false;
    for pid in text
        .lines()
        .filter(|l| l.contains(&name))
        .filter_map(|l| l.split_whitespace().next())
    {
        killed |= std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "killed by test"])
            .status()
            .is_ok_and(|s| s.success());
    }
    killed
}

async fn killed_connection_loses_and_duplicates_nothing(db: TestDatabase) {
    if !broker_up().await {
        return;
    }
    let names = TopologyNames::new();
    let topology = names.topology();
    topology.declare_at(&amqp_url()).await.expect("topology");
    let app = spawn(&db, &names).await;
    let publisher = Publisher::new(amqp_url(), "test-platform-publisher");
    publish(
        &publisher,
        &names,
        &events::eligible_user("k1", "u1", "eve"),
    )
    .await;
    publish(&publisher, &names, &events::sharing_on("k2", "u1")).await;

    // 2,000 posts, every 20th event sent twice (as a platform retry would).
    let total = 2000;
    let mut sent = 0;
    for n in 0..total {
        let event = events::post(
            &format!("kp{n}"),
            "post.created",
            "u1",
            &format!("p{n}"),
            "bulk",
            "public",
        );
        publish(&publisher, &names, &event).await;
        sent += 1;
        if n % 20 == 0 {
            publish(&publisher, &names, &event).await;
            sent += 1;
        }
        if n == total / 3 || n == 2 * total / 3 {
            let killed = tokio::task::spawn_blocking({
                let queue = names.events_queue.clone();
                move || kill_consumer_connection(&queue)
            })
            .await
            .expect("kill task");
            if !killed {
                eprintln!("note: rabbitmqctl could not close the consumer connection");
            }
        }
    }
    assert!(sent > total);
    wait_until(
        "every post to be applied",
        Duration::from_secs(120),
        || async { count(&app, "posts").await == i64::from(total) },
    )
    .await;
    // Give redeliveries a moment, then check there was no second effect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&app, "posts").await, i64::from(total));
    assert_eq!(
        count(&app, "activities").await,
        i64::from(total),
        "one Create per post, none twice"
    );
    assert_eq!(count(&app, "processed_events").await, i64::from(total) + 2);
    app.stop().await.expect("stop");
    publisher.close().await;
    let connection = platform_adapter::connection::connect(&amqp_url(), "test-cleanup")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let _ = topology.delete(&channel).await;
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test]
async fn killed_connection_loses_and_duplicates_nothing_on_postgres() {
    if let Some(db) = TestDatabase::postgres() {
        killed_connection_loses_and_duplicates_nothing(db).await;
    }
}

#[tokio::test]
async fn killed_connection_loses_and_duplicates_nothing_on_sqlite() {
    killed_connection_loses_and_duplicates_nothing(TestDatabase::sqlite()).await;
}
