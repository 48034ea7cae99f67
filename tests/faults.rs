//! Fault injection: the broker and the database are restarted, crashed, cut off and made to
//! block while events, inbox requests, deliveries and outgoing messages are in flight. Each
//! test states its invariant first and checks it at the end.
//!
//! Every service restarted here is a disposable one of this test process
//! (`tests/common/disposable`), never the shared PostgreSQL or RabbitMQ. Tests that use the
//! RabbitMQ node hold its lease, so they run one after another.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bridge::{
    Role,
    db::{Database, schema},
};
use diesel::prelude::*;
use integration_tests::{
    TestApp, TestDatabase,
    broker::{CollectingQueue, TopologyNames, declare_refusing_queue, delete_queue, publish_all},
    disposable::{DisposablePostgres, RabbitNode, StopMode, free_port},
    events,
    fake_actors::FakeActors,
    fake_inboxes::CountingInboxes,
    test_settings,
};
use platform_adapter::DeadLetters;
use serde_json::{Value, json};
use tokio::task::block_in_place;
use url::Url;

/// Opted-in users whose posts the event tests publish (each its own order key, so the
/// consumer's lanes all work).
const USERS: usize = 8;

/// Polls `check` every 50 ms until it holds; panics after `limit`.
async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

/// A bridge consuming `names` on `url` (HTTP, consumer and delivery roles).
async fn consuming_bridge(db: &TestDatabase, names: &TopologyNames, url: &str) -> TestApp {
    let broker = names.settings(url);
    let overrides: Vec<(&str, &str)> = broker.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_roles(
        test_settings(db, &overrides),
        &[Role::Http, Role::Consumer, Role::Delivery],
    )
    .await
}

/// Every effect of `posts` post events exactly once, nothing parked or left queued.
async fn assert_each_event_applied_once(
    app: &TestApp,
    rabbit: &RabbitNode,
    names: &TopologyNames,
    posts: usize,
) {
    let posts = i64::try_from(posts).expect("small");
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
    let Some(postgres) = block_in_place(DisposablePostgres::start) else {
        return;
    };
    let Some(rabbit) = RabbitNode::lease().await else {
        return;
    };
    let url = rabbit.amqp_url();
    let names = TopologyNames::new();
    let db = postgres.database();
    names.topology().declare_at(&url).await.expect("topology");
    let app = consuming_bridge(&db, &names, &url).await;
    wait_until(
        "the bridge to be ready",
        Duration::from_secs(30),
        || async { readiness(&app).await.0 == 200 },
    )
    .await;
    publish_all(&url, &names.events_exchange, &opt_in_events()).await;
    wait_until("the users to opt in", Duration::from_secs(30), || async {
        count(&app.db, Stored::ProcessedEvents).await == i64::try_from(USERS * 2).expect("small")
    })
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

    wait_until("every post", Duration::from_secs(240), || async {
        progress().await >= POSTS as i64
    })
    .await;
    eprintln!("all {POSTS} posts applied after {:?}", started.elapsed());
    // Redeliveries of what was unacknowledged at the cuts must find nothing left to do.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_each_event_applied_once(&app, &rabbit, &names, POSTS).await;
    app.stop().await.expect("stops");
}

/// Invariant: a PostgreSQL crash while events are consumed acknowledges nothing that was not
/// committed: after the restart every event's effect exists exactly once, and no event was
/// dead-lettered for what was only a transient failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_crash_during_consumption_acks_only_what_was_committed() {
    const POSTS: usize = 3_000;
    let Some(postgres) = block_in_place(DisposablePostgres::start) else {
        return;
    };
    let Some(rabbit) = RabbitNode::lease().await else {
        return;
    };
    let url = rabbit.amqp_url();
    let names = TopologyNames::new();
    let db = postgres.database();
    names.topology().declare_at(&url).await.expect("topology");
    let app = consuming_bridge(&db, &names, &url).await;
    publish_all(&url, &names.events_exchange, &opt_in_events()).await;
    wait_until("the users to opt in", Duration::from_secs(30), || async {
        count(&app.db, Stored::ProcessedEvents).await == i64::try_from(USERS * 2).expect("small")
    })
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
    // Long enough for events to exhaust their in-lane retries and go round the retry queue.
    tokio::time::sleep(Duration::from_secs(4)).await;
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
    wait_until("every post", Duration::from_secs(240), || async {
        progress().await >= POSTS as i64
    })
    .await;
    eprintln!("all {POSTS} posts applied after {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_each_event_applied_once(&app, &rabbit, &names, POSTS).await;
    app.stop().await.expect("stops");
}

/// One inbox POST and its answer.
#[derive(Debug, Clone, Copy)]
struct Answer {
    sent: Instant,
    answered: Instant,
    status: u16,
}

/// What an inbox burst left in the database: (follows, distinct followers, Follow ids
/// recorded, `follower.added` messages).
async fn follow_traces(db: &Database) -> (i64, i64, i64, i64) {
    use schema::{follows, inbound_activities, platform_outbox};
    db.run(|c| {
        Ok((
            follows::table.count().get_result(c)?,
            follows::table
                .select(diesel::dsl::count(follows::remote_actor_id).aggregate_distinct())
                .get_result(c)?,
            inbound_activities::table
                .filter(inbound_activities::kind.eq("Follow"))
                .count()
                .get_result(c)?,
            platform_outbox::table
                .filter(platform_outbox::message_type.eq("follower.added"))
                .count()
                .get_result(c)?,
        ))
    })
    .await
    .expect("count")
}

/// Invariant: while PostgreSQL is down the inbox answers 503 (never 2xx, never another
/// error), and every activity it answered 2xx — before, during or after the restart — has
/// its effect durable afterwards: signed Follows from 400 remote actors, each retried on 503
/// as a remote server would, end as exactly 400 follows, 400 recorded activity ids and 400
/// `follower.added` messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_during_inbox_burst_answers_503_and_keeps_every_2xx() {
    const ACTORS: usize = 400;
    const SENDERS: usize = 6;
    let Some(postgres) = block_in_place(DisposablePostgres::start) else {
        return;
    };
    let db = postgres.database();
    let port = free_port();
    let (bind, base) = (
        format!("127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
    );
    let domain = format!("localhost:{port}");
    let app = TestApp::spawn_roles(
        test_settings(
            &db,
            &[
                ("FEDIBRIDGE__SERVER__BIND", bind.as_str()),
                ("FEDIBRIDGE__FEDERATION__BASE_URL", base.as_str()),
                ("FEDIBRIDGE__FEDERATION__DOMAIN", domain.as_str()),
                ("FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true"),
            ],
        ),
        &[Role::Http],
    )
    .await;
    for event in [
        events::eligible_user("inbox-user", "u1", "alice"),
        events::sharing_on("inbox-sharing", "u1"),
    ] {
        let status = app.send_event(&event).await.status();
        assert!(status.is_success(), "opt-in event: {status}");
    }
    let remote = Arc::new(FakeActors::start().await);
    let inbox = Url::parse(&format!("{base}/inbox")).expect("inbox URL");
    let followed = format!("{base}/users/u1");
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let accepted = Arc::new(AtomicUsize::new(0));

    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for first in 0..SENDERS {
        let (remote, inbox, followed) = (Arc::clone(&remote), inbox.clone(), followed.clone());
        let (answers, accepted) = (Arc::clone(&answers), Arc::clone(&accepted));
        senders.spawn(async move {
            for n in (first..ACTORS).step_by(SENDERS) {
                let name = format!("a{n}");
                let actor = remote.actor(&name);
                let follow = json!({
                    "@context": "https://www.w3.org/ns/activitystreams",
                    "id": format!("{actor}/follows/1"),
                    "type": "Follow",
                    "actor": actor,
                    "object": followed,
                });
                loop {
                    let sent = Instant::now();
                    let status = remote.post(&inbox, &name, &follow).await;
                    let answered = Instant::now();
                    answers.lock().expect("lock").push(Answer {
                        sent,
                        answered,
                        status,
                    });
                    match status {
                        200..=299 => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        // What a remote server does: try again later.
                        503 => tokio::time::sleep(Duration::from_millis(50)).await,
                        // Anything else is a failure of the invariant; stop this actor.
                        _ => break,
                    }
                }
            }
        });
    }

    wait_until(
        "a quarter of the follows",
        Duration::from_secs(120),
        || async { accepted.load(Ordering::SeqCst) >= ACTORS / 4 },
    )
    .await;
    block_in_place(|| postgres.stop(StopMode::Fast));
    let down = Instant::now();
    let at_stop = accepted.load(Ordering::SeqCst);
    eprintln!(
        "database stopped at {at_stop} follows, {:?}",
        started.elapsed()
    );
    // Longer than two pool timeouts (2 s each), so that whole requests fall inside.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let up = Instant::now();
    block_in_place(|| postgres.start_again());
    eprintln!("database back after {:?}", started.elapsed());
    let finished = tokio::time::timeout(Duration::from_secs(180), async {
        while let Some(joined) = senders.join_next().await {
            joined.expect("sender task");
        }
    })
    .await;
    assert!(finished.is_ok(), "the burst did not finish in time");
    eprintln!("burst finished after {:?}", started.elapsed());

    let answers = answers.lock().expect("lock").clone();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for answer in &answers {
        *by_status.entry(answer.status).or_default() += 1;
    }
    eprintln!("answers by status: {by_status:?}");
    assert!(
        by_status
            .keys()
            .all(|s| (200..300).contains(s) || *s == 503),
        "only 2xx or 503, never another error: {by_status:?}"
    );
    let while_down: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= down && a.answered <= up)
        .collect();
    assert!(
        !while_down.is_empty(),
        "the burst must go on while the database is down"
    );
    assert!(
        while_down.iter().all(|a| a.status == 503),
        "the inbox answered something else than 503 while the database was down: {:?}",
        while_down.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        at_stop < ACTORS,
        "the restart must come mid-burst (every follow was already accepted)"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        ACTORS,
        "every Follow answered 2xx in the end"
    );
    let n = i64::try_from(ACTORS).expect("small");
    assert_eq!(
        follow_traces(&app.db).await,
        (n, n, n, n),
        "(follows, followers, Follow ids, follower.added messages): each exactly once"
    );
    app.stop().await.expect("stops");
    if let Ok(remote) = Arc::try_unwrap(remote) {
        remote.stop().await;
    }
}

/// Stores `count` accepted followers of platform user `uid`, each with its own inbox on
/// `host`.
async fn followers_on(db: &Database, uid: &str, host: &CountingInboxes, count: usize) {
    use bridge::db::{follows, remote_actors, users};
    let uid = uid.to_owned();
    let (authority, base) = (host.authority(), host.url(""));
    db.write(move |c| {
        let now = bridge::db::now_millis();
        let user = users::find_by_platform_id(c, &uid)?.expect("the user exists");
        for n in 0..count {
            let ap_id = format!("{base}/users/f{n}");
            let actor = remote_actors::upsert(
                c,
                &remote_actors::RemoteActorInput {
                    ap_id: ap_id.clone(),
                    host: authority.clone(),
                    kind: "Person".into(),
                    preferred_username: Some(format!("f{n}")),
                    name: None,
                    url: None,
                    icon_url: None,
                    inbox: format!("{ap_id}/inbox"),
                    shared_inbox: None,
                    public_key_id: None,
                    public_key_pem: None,
                    moved_to: None,
                },
                now,
            )?;
            follows::upsert(
                c,
                user.id,
                actor.id,
                &format!("{ap_id}/follows/1"),
                follows::FollowState::Accepted,
                now,
            )?;
        }
        Ok(())
    })
    .await
    .expect("followers stored");
}

/// Deliveries by state.
async fn delivery_states(db: &Database) -> HashMap<String, i64> {
    use schema::deliveries;
    db.run(|c| {
        let rows: Vec<(String, i64)> = deliveries::table
            .group_by(deliveries::state)
            .select((deliveries::state, diesel::dsl::count_star()))
            .load(c)?;
        Ok(rows.into_iter().collect())
    })
    .await
    .expect("count deliveries")
}

/// Invariant: a PostgreSQL crash in the middle of a fan-out (5 posts to 300 followers'
/// inboxes on two hosts) skips no delivery: afterwards every delivery is `delivered` and
/// every inbox has received every activity. Sending is at least once: an inbox may get an
/// activity a second time only if its send was in the in-flight window when the database
/// crashed (sent, but its outcome not yet committed), so the repeats are bounded by that
/// window: at most `delivery.concurrency` sends in flight plus the outcomes not yet written
/// (one writer batch), and no inbox gets anything three times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_crash_during_fan_out_skips_no_delivery() {
    const POSTS: usize = 5;
    const FOLLOWERS_PER_HOST: usize = 150;
    const CONCURRENCY: usize = 16;
    /// Outcomes the delivery writer commits per transaction (bridge::delivery::outcome).
    const WRITER_BATCH: usize = 256;
    let Some(postgres) = block_in_place(DisposablePostgres::start) else {
        return;
    };
    let db = postgres.database();
    let concurrency = CONCURRENCY.to_string();
    let app = TestApp::spawn_roles(
        test_settings(
            &db,
            &[
                ("FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true"),
                ("FEDIBRIDGE__DELIVERY__CONCURRENCY", concurrency.as_str()),
                ("FEDIBRIDGE__DELIVERY__POLL_INTERVAL_MS", "50"),
                ("FEDIBRIDGE__DELIVERY__REQUEST_TIMEOUT_SECS", "3"),
                ("FEDIBRIDGE__DELIVERY__LEASE_SECS", "6"),
            ],
        ),
        &[Role::Http, Role::Delivery],
    )
    .await;
    for event in [
        events::eligible_user("fan-user", "u1", "alice"),
        events::sharing_on("fan-sharing", "u1"),
    ] {
        let status = app.send_event(&event).await.status();
        assert!(status.is_success(), "opt-in event: {status}");
    }
    let hosts = [
        CountingInboxes::start(Duration::from_millis(20)).await,
        CountingInboxes::start(Duration::from_millis(20)).await,
    ];
    for host in &hosts {
        followers_on(&app.db, "u1", host, FOLLOWERS_PER_HOST).await;
    }
    let started = Instant::now();
    for n in 0..POSTS {
        let event = events::post(
            &format!("fan-post-{n}"),
            "post.created",
            "u1",
            &format!("fp{n}"),
            "to every follower",
            "public",
        );
        let status = app.send_event(&event).await.status();
        assert!(status.is_success(), "post event: {status}");
    }
    let expected = POSTS * FOLLOWERS_PER_HOST * hosts.len();
    let total = |hosts: &[CountingInboxes]| hosts.iter().map(|h| h.total() as usize).sum::<usize>();

    wait_until(
        "30 % of the deliveries",
        Duration::from_secs(120),
        || async { total(&hosts) >= expected * 3 / 10 },
    )
    .await;
    block_in_place(|| postgres.stop(StopMode::Immediate));
    let at_crash = total(&hosts);
    eprintln!(
        "database crashed at {at_crash} requests, {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    block_in_place(|| postgres.start_again());
    eprintln!("database back after {:?}", started.elapsed());
    assert!(at_crash < expected, "the crash must come mid fan-out");

    let limit = i64::try_from(expected).expect("small");
    wait_until(
        "every delivery to be delivered",
        Duration::from_secs(120),
        || async { delivery_states(&app.db).await.get("delivered").copied() == Some(limit) },
    )
    .await;
    eprintln!("fan-out complete after {:?}", started.elapsed());
    let states = delivery_states(&app.db).await;
    assert_eq!(
        states.values().sum::<i64>(),
        limit,
        "one delivery per inbox and post: {states:?}"
    );

    let mut pairs = 0;
    let mut repeats = 0;
    let mut most = 0;
    let mut activities = std::collections::HashSet::new();
    for host in &hosts {
        for ((_, activity), times) in host.received() {
            pairs += 1;
            repeats += times - 1;
            most = most.max(times);
            activities.insert(activity);
        }
    }
    eprintln!("{pairs} (inbox, activity) pairs, {repeats} repeated sends");
    assert_eq!(activities.len(), POSTS, "one Create per post");
    assert_eq!(pairs, expected, "every inbox received every activity");
    assert!(most <= 2, "no inbox gets an activity three times");
    assert!(
        repeats as usize <= CONCURRENCY + WRITER_BATCH,
        "{repeats} repeats exceed the in-flight window"
    );
    app.stop().await.expect("stops");
    for host in hosts {
        host.stop().await;
    }
}

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
async fn marked_sent(db: &Database) -> std::collections::HashSet<String> {
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
    let Some(postgres) = block_in_place(DisposablePostgres::start) else {
        return;
    };
    let Some(rabbit) = RabbitNode::lease().await else {
        return;
    };
    let url = rabbit.amqp_url();
    let names = TopologyNames::new();
    names.topology().declare_at(&url).await.expect("topology");
    let refusing = format!("{}.full", names.events_queue);
    declare_refusing_queue(&url, &names.outbound_exchange, &refusing).await;
    let db = postgres.database();
    let broker = names.settings(&url);
    let overrides: Vec<(&str, &str)> = broker.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app =
        TestApp::spawn_roles(test_settings(&db, &overrides), &[Role::Http, Role::Relay]).await;

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
