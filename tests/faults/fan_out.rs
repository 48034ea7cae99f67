//! The delivery engine while the database crashes in the middle of a fan-out.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use bridge::{
    Role,
    db::{Database, schema, users},
};
use diesel::prelude::*;
use integration_tests::{
    TestApp,
    disposable::{DisposablePostgres, StopMode},
    events,
    fake_inboxes::CountingInboxes,
    sharing::{insert_follower, remote_person},
    test_settings,
};
use tokio::task::block_in_place;

use crate::wait_until;

/// Stores `count` accepted followers of platform user `uid`, each with its own inbox on
/// `host`.
async fn followers_on(db: &Database, uid: &str, host: &CountingInboxes, count: usize) {
    let uid = uid.to_owned();
    let (authority, base) = (host.authority(), host.url(""));
    db.write(move |c| {
        let now = bridge::db::now_millis();
        let user = users::find_by_platform_id(c, &uid)?.expect("the user exists");
        for n in 0..count {
            let actor = remote_person(&base, &authority, &format!("f{n}"), None);
            let follow_id = format!("{}/follows/1", actor.ap_id);
            insert_follower(c, user.id, &actor, &follow_id, true, now)?;
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

/// The values of the Prometheus counter `name` on the app's `/metrics`, by label value.
async fn counters(app: &TestApp, name: &str) -> HashMap<String, u64> {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once("} ")?;
            let label = labels.split_once('"')?.1.trim_end_matches('"');
            Some((label.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Invariant: a PostgreSQL crash in the middle of a fan-out (5 posts to 300 followers'
/// inboxes on two hosts) skips no delivery: afterwards every delivery is `delivered` and
/// every inbox has received every activity. Sending is at least once: an inbox may get an
/// activity a second time only if its send was in the in-flight window when the database
/// crashed (sent, but its outcome not yet committed), so the repeats are bounded by that
/// window: the sends in flight (at most `delivery.concurrency`) plus those whose outcomes the
/// writer had not committed yet, here bounded by one writer batch. No inbox gets anything
/// three times, and no failure is counted against any delivery or host: the crash was our
/// database's, not the remote hosts'.
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
                // Fail fast while the database is down, so that outcomes are lost and the
                // lease expiry has work to do.
                ("FEDIBRIDGE__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
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
    tokio::time::sleep(Duration::from_secs(5)).await;
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
    let outcomes = counters(&app, "fedibridge_deliveries_total").await;
    let failures = counters(&app, "fedibridge_delivery_failures_total").await;
    eprintln!("outcomes recorded: {outcomes:?}");
    assert!(
        failures.is_empty()
            && ["retry", "expired", "refused", "gone"]
                .iter()
                .all(|o| !outcomes.contains_key(*o)),
        "the crash was our database's: no failure may be counted against a delivery or its \
         host (outcomes {outcomes:?}, failures {failures:?})"
    );
    let states = delivery_states(&app.db).await;
    assert_eq!(
        states.values().sum::<i64>(),
        limit,
        "one delivery per inbox and post: {states:?}"
    );

    let mut pairs = 0;
    let mut repeats = 0;
    let mut most = 0;
    let mut activities = HashSet::new();
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
