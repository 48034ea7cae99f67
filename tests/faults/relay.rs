//! The outbox relay while the broker refuses messages and blocks publishers.

use std::{collections::HashSet, time::Duration};

use bridge::{
    Role,
    db::{Database, schema},
};
use diesel::prelude::*;
use integration_tests::broker::{CollectingQueue, declare_refusing_queue, delete_queue};
use serde_json::json;
use tokio::task::block_in_place;

use crate::{BrokerFixture, wait_until};

/// Users the messages concern (their order keys).
const USERS: usize = 8;

/// Adds outbox messages `ids` (as a change in the bridge would, in one transaction).
async fn enqueue_messages(db: &Database, ids: std::ops::Range<usize>) {
    use bridge::db::outbox;
    db.write(move |c| {
        let now = bridge::db::now_millis();
        for n in ids {
            let id = format!("msg-{n}");
            let payload = json!({"id": id, "type": "like.added", "data": {"n": n}}).to_string();
            outbox::enqueue(
                c,
                &id,
                &format!("u{}", n % USERS),
                "like.added",
                &payload,
                now,
            )?;
        }
        Ok(())
    })
    .await
    .expect("enqueue");
}

/// Ids of the outbox messages marked as sent.
async fn marked_sent(db: &Database) -> HashSet<String> {
    use schema::platform_outbox;
    db.run(|c| {
        Ok(platform_outbox::table
            .filter(platform_outbox::published_at.is_not_null())
            .select(platform_outbox::message_id)
            .load::<String>(c)?
            .into_iter()
            .collect())
    })
    .await
    .expect("read outbox")
}

/// Invariant: the relay marks an outbox message as sent only once the broker confirmed it.
/// While the only queue on the outbound exchange refuses messages (the broker nacks them),
/// and while the broker blocks publishers (a memory alarm), the relay, though it has
/// messages and publishes them, marks none as sent; once the queue takes messages and the
/// alarm clears, every outbox message arrives exactly once (by message id) at a queue bound
/// to the outbound exchange, and is marked sent.
///
/// Both faults are needed: under the alarm the client library itself stops writing, so a
/// relay that did not wait for confirms would still mark nothing there; a nack tells the two
/// apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_or_blocking_broker_gets_nothing_marked_sent() {
    const BEFORE: usize = 300;
    const DURING: usize = 2_000;
    let Some(fixture) = BrokerFixture::start().await else {
        return;
    };
    let (rabbit, names, url) = (&fixture.rabbit, &fixture.names, fixture.url());
    let refusing = format!("{}.full", names.events_queue);
    declare_refusing_queue(&url, &names.outbound_exchange, &refusing).await;
    let app = fixture.bridge(&[Role::Http, Role::Relay], &[]).await;

    // Refused: every publish is nacked.
    enqueue_messages(&app.db, 0..BEFORE).await;
    wait_until(
        "the relay to publish (it connects on its first publish)",
        Duration::from_secs(30),
        || async { !block_in_place(|| rabbit.connection_state("fedibridge-relay")).is_empty() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        marked_sent(&app.db).await.is_empty(),
        "nothing marked sent while the broker nacks every message"
    );

    // The platform's queue takes over: what was refused is published and marked.
    delete_queue(&url, &refusing).await;
    let platform = CollectingQueue::start(
        &url,
        &names.outbound_exchange,
        &format!("{}.platform", names.events_queue),
    )
    .await;
    wait_until(
        "the refused messages to be marked sent",
        Duration::from_secs(60),
        || async { marked_sent(&app.db).await.len() == BEFORE },
    )
    .await;

    block_in_place(|| rabbit.block_publishers());
    enqueue_messages(&app.db, BEFORE..BEFORE + DURING).await;
    wait_until(
        "the broker to block the relay's connection as it publishes",
        Duration::from_secs(20),
        || async { block_in_place(|| rabbit.connection_state("fedibridge-relay")) == "blocked" },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        marked_sent(&app.db).await.len(),
        BEFORE,
        "nothing marked sent while the broker confirms nothing"
    );
    assert_eq!(
        platform.received().await.len(),
        BEFORE,
        "and nothing was routed"
    );

    block_in_place(|| rabbit.unblock_publishers());
    wait_until(
        "every message marked sent",
        Duration::from_secs(120),
        || async { marked_sent(&app.db).await.len() == BEFORE + DURING },
    )
    .await;
    wait_until(
        "every message on the platform's queue",
        Duration::from_secs(60),
        || async { platform.received().await.len() == BEFORE + DURING },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = platform.received().await;
    let repeated: Vec<(&String, &u32)> = received.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "each message exactly once: {repeated:?}"
    );
    assert!((0..BEFORE + DURING).all(|n| received.contains_key(&format!("msg-{n}"))));
    app.stop().await.expect("stops");
    platform.stop().await;
}
