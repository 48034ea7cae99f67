//! The platform's events through the consumer while the broker restarts, its connections are
//! cut, and the database crashes.

use std::time::{Duration, Instant};

use bridge::{
    Role,
    db::{Database, schema},
};
use diesel::prelude::*;
use integration_tests::{TestApp, broker::publish_all, disposable::StopMode, events};
use platform_adapter::DeadLetters;
use serde_json::Value;
use tokio::task::block_in_place;

use crate::{BrokerFixture, wait_until};

/// Opted-in users whose posts the event tests publish (each its own order key, so the
/// consumer's lanes all work).
const USERS: usize = 8;

/// What the event tests count in the database.
#[derive(Debug, Clone, Copy)]
enum Stored {
    Posts,
    ProcessedEvents,
    /// `Create` activities.
    Creates,
    /// Distinct objects of `Create` activities.
    CreatedObjects,
}

async fn count(db: &Database, what: Stored) -> i64 {
    use schema::{activities, posts, processed_events};
    db.run(move |c| {
        Ok(match what {
            Stored::Posts => posts::table.count().get_result(c)?,
            Stored::ProcessedEvents => processed_events::table.count().get_result(c)?,
            Stored::Creates => activities::table
                .filter(activities::kind.eq("Create"))
                .count()
                .get_result(c)?,
            Stored::CreatedObjects => activities::table
                .filter(activities::kind.eq("Create"))
                .select(diesel::dsl::count(activities::object_ap_id).aggregate_distinct())
                .get_result(c)?,
        })
    })
    .await
    .expect("count")
}

/// `/readyz`: (status, body).
async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `user.created` and `sharing.turned_on` for every test user.
fn opt_in_events() -> Vec<Value> {
    (0..USERS)
        .flat_map(|u| {
            let uid = format!("u{u}");
            [
                events::eligible_user(&format!("setup-user-{u}"), &uid, &format!("user{u}")),
                events::sharing_on(&format!("setup-sharing-{u}"), &uid),
            ]
        })
        .collect()
}

/// `posts` public `post.created` events spread over the users; every `duplicate_every`th
/// one is published twice, as a platform retrying after a lost confirm would.
fn post_events(posts: usize, duplicate_every: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(posts + posts / duplicate_every + 1);
    for n in 0..posts {
        let event = events::post(
            &format!("post-event-{n}"),
            "post.created",
            &format!("u{}", n % USERS),
            &format!("p{n}"),
            "bulk",
            "public",
        );
        if n % duplicate_every == 0 {
            out.push(event.clone());
        }
        out.push(event);
    }
    out
}

/// A bridge consuming the fixture's events (HTTP, consumer and delivery roles), with
/// `extra` settings, once every test user has opted in through it.
async fn opted_in_bridge(fixture: &BrokerFixture, extra: &[(&str, &str)]) -> TestApp {
    let app = fixture
        .bridge(&[Role::Http, Role::Consumer, Role::Delivery], extra)
        .await;
    wait_until(
        "the bridge to be ready",
        Duration::from_secs(30),
        || async { readiness(&app).await.0 == 200 },
    )
    .await;
    publish_all(
        &fixture.url(),
        &fixture.names.events_exchange,
        &opt_in_events(),
    )
    .await;
    wait_until("the users to opt in", Duration::from_secs(30), || async {
        count(&app.db, Stored::ProcessedEvents).await == i64::try_from(USERS * 2).expect("small")
    })
    .await;
    app
}

/// Waits for the effects of `posts` post events, then checks each exists exactly once, and
/// nothing is parked or left queued.
async fn assert_each_event_applied_once(app: &TestApp, fixture: &BrokerFixture, posts: usize) {
    let (rabbit, names) = (&fixture.rabbit, &fixture.names);
    let posts = i64::try_from(posts).expect("small");
    wait_until("every post", Duration::from_secs(240), || async {
        count(&app.db, Stored::Posts).await >= posts
    })
    .await;
    // Redeliveries of what was unacknowledged at the faults must find nothing left to do.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let setup = i64::try_from(opt_in_events().len()).expect("small");
    assert_eq!(count(&app.db, Stored::Posts).await, posts, "posts stored");
    assert_eq!(
        count(&app.db, Stored::Creates).await,
        posts,
        "one Create per post, none twice"
    );
    assert_eq!(count(&app.db, Stored::CreatedObjects).await, posts);
    assert_eq!(
        count(&app.db, Stored::ProcessedEvents).await,
        posts + setup,
        "every event id recorded once"
    );
    let topology = names.topology();
    let letters = DeadLetters::open(&rabbit.amqp_url(), topology.clone())
        .await
        .expect("dead letters");
    assert_eq!(
        letters.count().await.expect("count"),
        0,
        "nothing dead-lettered: every failure here was transient"
    );
    letters.close().await;
    let depths = block_in_place(|| {
        [topology.events_queue.clone(), topology.retry_queue()].map(|q| rabbit.queue_depth(&q))
    });
    assert_eq!(depths, [0, 0], "nothing left in the events or retry queue");
}

/// Invariant: with 10,000 post events (and 200 duplicates) published persistent and
/// confirmed, cutting every broker connection and then restarting the broker mid-stream
/// loses nothing and duplicates nothing: each post, its one `Create` and its event id exist
/// exactly once. The consumer reconnects by itself, and `/readyz` says "not ready" while
/// the broker is down and "ready" once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_and_duplicates_nothing() {
    const POSTS: usize = 10_000;
    let Some(fixture) = BrokerFixture::start().await else {
        return;
    };
    let (rabbit, names, url) = (&fixture.rabbit, &fixture.names, fixture.url());
    // One event per transaction, few in flight: batched ingest keeps pace with the
    // publisher, and the faults must strike while most of the stream is still queued.
    let app = opted_in_bridge(
        &fixture,
        &[
            ("FEDIBRIDGE__BROKER__MAX_BATCH", "1"),
            ("FEDIBRIDGE__BROKER__PREFETCH", "16"),
        ],
    )
    .await;

    let started = Instant::now();
    publish_all(&url, &names.events_exchange, &post_events(POSTS, 50)).await;
    eprintln!("published {POSTS} posts in {:?}", started.elapsed());
    let progress = || async { count(&app.db, Stored::Posts).await };

    // Fault 1: every connection cut (the consumer's included) at 15 %.
    wait_until("15 % of the posts", Duration::from_secs(120), || async {
        progress().await >= (POSTS * 15 / 100) as i64
    })
    .await;
    block_in_place(|| rabbit.close_all_connections());
    eprintln!(
        "connections cut at {} posts, {:?}",
        progress().await,
        started.elapsed()
    );

    // Fault 2: the broker stopped and started again at 40 %.
    wait_until("40 % of the posts", Duration::from_secs(120), || async {
        progress().await >= (POSTS * 40 / 100) as i64
    })
    .await;
    block_in_place(|| rabbit.stop());
    let at_stop = progress().await;
    eprintln!("broker stopped at {at_stop} posts, {:?}", started.elapsed());
    assert!(
        at_stop < POSTS as i64,
        "the restart must come mid-stream (all {POSTS} posts were already applied)"
    );
    wait_until(
        "/readyz to report the broker down",
        Duration::from_secs(15),
        || async {
            let (status, body) = readiness(&app).await;
            status == 503 && body["checks"]["broker"] == "disconnected"
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(readiness(&app).await.0, 503, "still not ready while down");
    let stalled = progress().await;
    block_in_place(|| rabbit.start_again());
    wait_until(
        "/readyz to report ready after the restart",
        Duration::from_secs(60),
        || async { readiness(&app).await.0 == 200 },
    )
    .await;
    eprintln!(
        "broker back at {stalled} posts, consumer ready, {:?}",
        started.elapsed()
    );

    assert_each_event_applied_once(&app, &fixture, POSTS).await;
    eprintln!("all {POSTS} posts applied after {:?}", started.elapsed());
    app.stop().await.expect("stops");
}

/// Invariant: a PostgreSQL crash while events are consumed acknowledges nothing that was not
/// committed: after the restart every event's effect exists exactly once, and no event was
/// dead-lettered for what was only a transient failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_crash_during_consumption_acks_only_what_was_committed() {
    const POSTS: usize = 3_000;
    let Some(fixture) = BrokerFixture::start().await else {
        return;
    };
    let (postgres, names, url) = (&fixture.postgres, &fixture.names, fixture.url());
    // Database calls fail after 1 s while it is down, so that in-lane retries run out
    // quickly and events also go round the retry queue.
    let app = opted_in_bridge(
        &fixture,
        &[("FEDIBRIDGE__DATABASE__CONNECT_TIMEOUT_SECS", "1")],
    )
    .await;

    let started = Instant::now();
    publish_all(&url, &names.events_exchange, &post_events(POSTS, 50)).await;
    let progress = || async { count(&app.db, Stored::Posts).await };
    wait_until("a third of the posts", Duration::from_secs(120), || async {
        progress().await >= (POSTS / 3) as i64
    })
    .await;
    block_in_place(|| postgres.stop(StopMode::Immediate));
    eprintln!("database crashed after {:?}", started.elapsed());
    wait_until(
        "/readyz to report the database down",
        Duration::from_secs(15),
        || async { readiness(&app).await.0 == 503 },
    )
    .await;
    // Longer than the in-lane retries (four tries of 1 s and 1.4 s of pauses), so events
    // also go round the retry queue.
    tokio::time::sleep(Duration::from_secs(7)).await;
    block_in_place(|| postgres.start_again());
    let at_restart = progress().await;
    eprintln!(
        "database back with {at_restart} posts after {:?}",
        started.elapsed()
    );
    assert!(
        at_restart < POSTS as i64,
        "the crash must come mid-stream (all {POSTS} posts were already applied)"
    );
    assert_each_event_applied_once(&app, &fixture, POSTS).await;
    eprintln!("all {POSTS} posts applied after {:?}", started.elapsed());
    app.stop().await.expect("stops");
}
