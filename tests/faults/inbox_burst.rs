//! The inbox while the database restarts under a burst of signed activities.

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
    TestApp,
    disposable::{DisposablePostgres, StopMode, free_port},
    events,
    fake_actors::FakeActors,
    test_settings,
};
use serde_json::json;
use tokio::task::block_in_place;
use url::Url;

use crate::wait_until;

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
                // Requests fail after 1 s while the database is down, so that several
                // whole requests fall inside the outage.
                ("FEDIBRIDGE__DATABASE__CONNECT_TIMEOUT_SECS", "1"),
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
    // An orderly restart: sessions end with "terminating connection due to administrator
    // command", another error than a crash's (the other tests crash the database).
    block_in_place(|| postgres.stop(StopMode::Fast));
    let down = Instant::now();
    let at_stop = accepted.load(Ordering::SeqCst);
    eprintln!(
        "database stopped at {at_stop} follows, {:?}",
        started.elapsed()
    );
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
