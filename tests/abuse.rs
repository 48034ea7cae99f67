//! Abuse limits on the inbox: rate limits per remote host and per actor (429 with
//! `Retry-After`, nothing done), follow caps per remote host (Reject, nothing stored), and
//! deadlines for clients that send their headers or body too slowly (408, no worker held).
//!
//! The bridge runs as `localhost:PORT`; each [`FakeRemote`] is `localhost` on a port of its
//! own, which makes it a host of its own (hosts are compared with their port).

use std::time::{Duration, Instant};

use bridge::{
    db::{
        Database, keys, now_millis,
        schema::{
            activities, deliveries, follows, inbound_activities, platform_outbox, remote_actors,
        },
        users,
    },
    opt_in::SharingState,
};
use diesel::prelude::*;
use integration_tests::{
    Backend, TestApp, TestDatabase,
    remote::{FakeRemote, spawn_localhost_bridge},
    sharing::profile,
    test_settings,
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use url::Url;

/// A bridge on `http://localhost:PORT` with users `u1` and `u2` sharing `on`.
struct Bridge {
    app: TestApp,
    db: Database,
    base: Url,
    _database: TestDatabase,
}

impl Bridge {
    async fn start(backend: Backend, extra: &[(&str, &str)]) -> Option<Bridge> {
        let database = TestDatabase::new(backend)?;
        let (app, db, base) = spawn_localhost_bridge(&database, extra).await;
        db.write(|c| {
            let now = now_millis();
            for (uid, name) in [("u1", "alice"), ("u2", "bob")] {
                let (user, _) = users::upsert_profile(c, &profile(uid, name, true), now)?;
                keys::ensure(c, Some(user.id), now)?;
                users::set_sharing_state(c, user.id, SharingState::On, "[]", now)?;
            }
            Ok(())
        })
        .await
        .expect("users");
        Some(Bridge {
            app,
            db,
            base,
            _database: database,
        })
    }

    fn actor(&self, uid: &str) -> Url {
        self.base.join(&format!("/users/{uid}")).expect("url")
    }

    fn inbox(&self) -> Url {
        self.base.join("/inbox").expect("url")
    }

    fn user_inbox(&self, uid: &str) -> Url {
        self.base.join(&format!("/users/{uid}/inbox")).expect("url")
    }

    /// (inbound activities, platform messages, activities sent, follows): what any effect
    /// of an inbound activity leaves behind.
    async fn traces(&self) -> (i64, i64, i64, i64) {
        self.db
            .run(|c| {
                Ok((
                    inbound_activities::table.count().get_result(c)?,
                    platform_outbox::table.count().get_result(c)?,
                    activities::table.count().get_result(c)?,
                    follows::table.count().get_result(c)?,
                ))
            })
            .await
            .expect("traces")
    }

    /// Followers as (local user, remote actor), sorted.
    async fn followers(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = self
            .db
            .run(|c| {
                Ok(follows::table
                    .inner_join(bridge::db::schema::users::table)
                    .inner_join(remote_actors::table)
                    .select((
                        bridge::db::schema::users::platform_user_id,
                        remote_actors::ap_id,
                    ))
                    .load(c)?)
            })
            .await
            .expect("followers");
        rows.sort();
        rows
    }

    /// (kind, inbox) of every activity queued for delivery.
    async fn queued(&self) -> Vec<(String, String)> {
        self.db
            .run(|c| {
                Ok(deliveries::table
                    .inner_join(activities::table)
                    .order(deliveries::id.asc())
                    .select((activities::kind, deliveries::inbox))
                    .load(c)?)
            })
            .await
            .expect("deliveries")
    }

    async fn metrics(&self) -> String {
        self.app
            .get("/metrics")
            .await
            .text()
            .await
            .expect("metrics")
    }
}

fn follow(actor: &Url, id: &str, object: &Url) -> Value {
    json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": format!("{actor}#{id}"),
        "type": "Follow",
        "actor": actor,
        "object": object
    })
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("whole seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_host_gets_429_with_retry_after_and_other_hosts_do_not() {
    let Some(bridge) = Bridge::start(
        Backend::Sqlite,
        &[
            ("FEDIBRIDGE__INBOX__HOST_ACTIVITIES_PER_MINUTE", "1"),
            ("FEDIBRIDGE__INBOX__HOST_BURST", "3"),
            ("FEDIBRIDGE__INBOX__ACTOR_ACTIVITIES_PER_MINUTE", "0"),
        ],
    )
    .await
    else {
        return;
    };
    let flood = FakeRemote::start(&["eve"], &[]).await;
    let calm = FakeRemote::start(&["carol"], &[]).await;
    let (eve, carol) = (flood.actor("eve"), calm.actor("carol"));
    let u1 = bridge.actor("u1");

    for n in 0..3 {
        let status = flood
            .send(&bridge.inbox(), "eve", follow(&eve, &format!("f{n}"), &u1))
            .await;
        assert_eq!(status, 202, "request {n} is within the burst");
    }
    let before = bridge.traces().await;
    assert_eq!(before, (3, 1, 3, 1), "three Follows handled, one follower");

    // Over budget, on the shared inbox and on a user's inbox alike.
    for inbox in [bridge.inbox(), bridge.user_inbox("u1")] {
        let response = flood
            .send_response(&inbox, "eve", follow(&eve, &format!("over-{inbox}"), &u1))
            .await;
        assert_eq!(response.status().as_u16(), 429, "{inbox}");
        // One request a minute: the next one is about a minute away.
        assert!(
            (1..=60).contains(&retry_after(&response)),
            "{:?}",
            response.headers()
        );
    }
    assert_eq!(
        bridge.traces().await,
        before,
        "a refused request leaves no trace"
    );
    assert_eq!(flood.fetches(), 1, "nothing fetched for refused requests");

    // Another host has its own budget.
    let status = calm
        .send(&bridge.inbox(), "carol", follow(&carol, "f", &u1))
        .await;
    assert_eq!(status, 202);
    assert_eq!(bridge.followers().await.len(), 2);

    let metrics = bridge.metrics().await;
    for needle in [
        r#"fedibridge_inbox_rate_limited_total{scope="host"} 2"#,
        r#"fedibridge_inbox_activities_total{outcome="rate_limited"} 2"#,
    ] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_actor_gets_429_and_its_neighbours_on_the_same_host_do_not() {
    let Some(bridge) = Bridge::start(
        Backend::Sqlite,
        &[
            ("FEDIBRIDGE__INBOX__ACTOR_ACTIVITIES_PER_MINUTE", "1"),
            ("FEDIBRIDGE__INBOX__ACTOR_BURST", "2"),
        ],
    )
    .await
    else {
        return;
    };
    let remote = FakeRemote::start(&["eve", "mallory"], &[]).await;
    let (eve, mallory) = (remote.actor("eve"), remote.actor("mallory"));
    let (u1, u2) = (bridge.actor("u1"), bridge.actor("u2"));

    assert_eq!(
        remote
            .send(&bridge.inbox(), "eve", follow(&eve, "f1", &u1))
            .await,
        202
    );
    assert_eq!(
        remote
            .send(&bridge.inbox(), "eve", follow(&eve, "f2", &u2))
            .await,
        202
    );
    let before = bridge.traces().await;
    let response = remote
        .send_response(&bridge.inbox(), "eve", follow(&eve, "f3", &u1))
        .await;
    assert_eq!(response.status().as_u16(), 429);
    assert!(retry_after(&response) >= 1);
    assert_eq!(
        bridge.traces().await,
        before,
        "a refused request leaves no trace"
    );

    assert_eq!(
        remote
            .send(&bridge.inbox(), "mallory", follow(&mallory, "f1", &u1))
            .await,
        202,
        "another actor of the same host has its own budget"
    );
    let metrics = bridge.metrics().await;
    assert!(
        metrics.contains(r#"fedibridge_inbox_rate_limited_total{scope="actor"} 1"#),
        "{metrics}"
    );
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_key_ids_cannot_make_us_fetch_without_bound_nor_spend_a_hosts_budget() {
    let Some(bridge) = Bridge::start(
        Backend::Sqlite,
        &[
            ("FEDIBRIDGE__INBOX__HOST_ACTIVITIES_PER_MINUTE", "1"),
            ("FEDIBRIDGE__INBOX__HOST_BURST", "2"),
            ("FEDIBRIDGE__INBOX__ACTOR_ACTIVITIES_PER_MINUTE", "0"),
        ],
    )
    .await
    else {
        return;
    };
    let remote = FakeRemote::start(&["eve"], &[]).await;
    let eve = remote.actor("eve");
    let u1 = bridge.actor("u1");
    assert_eq!(
        remote
            .send(&bridge.inbox(), "eve", follow(&eve, "f1", &u1))
            .await,
        202
    );
    assert_eq!(remote.fetches(), 1);

    // Requests signed with key ids the server does not serve (as a forger would make up):
    // each new one costs a fetch until the host's key-fetch budget is spent, then 429.
    let mut statuses = Vec::new();
    for n in 0..4 {
        let ghost = format!("ghost{n}");
        remote.new_key(&ghost);
        let actor = remote.actor(&ghost);
        statuses.push(
            remote
                .send(&bridge.inbox(), &ghost, follow(&actor, "f", &u1))
                .await,
        );
    }
    assert_eq!(statuses, [401, 429, 429, 429]);
    assert_eq!(
        remote.fetches(),
        2,
        "no fetch once the key-fetch budget is spent"
    );

    // Eve's key is known: the failed requests did not spend her host's activity budget.
    assert_eq!(
        remote
            .send(&bridge.inbox(), "eve", follow(&eve, "f2", &u1))
            .await,
        202
    );
    let metrics = bridge.metrics().await;
    assert!(
        metrics.contains(r#"fedibridge_inbox_rate_limited_total{scope="key_fetch"} 3"#),
        "{metrics}"
    );
    bridge.app.stop().await.expect("stops");
}

async fn follow_caps(backend: Backend) {
    let Some(bridge) = Bridge::start(
        backend,
        &[
            ("FEDIBRIDGE__INBOX__MAX_FOLLOWERS_PER_HOST_PER_USER", "2"),
            ("FEDIBRIDGE__INBOX__MAX_FOLLOWERS_PER_HOST", "3"),
        ],
    )
    .await
    else {
        return;
    };
    let crowd = FakeRemote::start(&["a1", "a2", "a3", "a4"], &[]).await;
    let other = FakeRemote::start(&["b1"], &[]).await;
    let (u1, u2) = (bridge.actor("u1"), bridge.actor("u2"));
    let a = |name: &str| crowd.actor(name);
    let send = |remote: &'static str, name: &'static str, id: &'static str, object: &Url| {
        let (remote, inbox, activity) = match remote {
            "crowd" => (&crowd, bridge.inbox(), follow(&a(name), id, object)),
            _ => (
                &other,
                bridge.inbox(),
                follow(&other.actor(name), id, object),
            ),
        };
        async move { remote.send(&inbox, name, activity).await }
    };

    // Two accounts of one host may follow u1; the third is rejected.
    assert_eq!(send("crowd", "a1", "f", &u1).await, 202);
    assert_eq!(send("crowd", "a2", "f", &u1).await, 202);
    let messages_before = bridge.traces().await.1;
    assert_eq!(send("crowd", "a3", "f", &u1).await, 202);
    assert_eq!(
        bridge.traces().await.1,
        messages_before,
        "the platform hears nothing of a rejected follow"
    );
    let reject_to_a3 = ("Reject".to_owned(), format!("{}/inbox", a("a3")));
    assert!(
        bridge.queued().await.contains(&reject_to_a3),
        "a Reject is queued to a3: {:?}",
        bridge.queued().await
    );

    // A follower that already follows is not a new one: its repeated Follow is accepted.
    assert_eq!(send("crowd", "a1", "again", &u1).await, 202);
    // Another host is not concerned.
    assert_eq!(send("other", "b1", "f", &u1).await, 202);
    // u2 has room for this host, and the host has room for one more in all.
    assert_eq!(send("crowd", "a3", "f2", &u2).await, 202);
    // Now the host has 3 followers here: a fourth account is rejected, even for u2.
    assert_eq!(send("crowd", "a4", "f", &u2).await, 202);

    let mut expected = vec![
        ("u1".to_owned(), a("a1").to_string()),
        ("u1".to_owned(), a("a2").to_string()),
        ("u1".to_owned(), other.actor("b1").to_string()),
        ("u2".to_owned(), a("a3").to_string()),
    ];
    expected.sort();
    assert_eq!(bridge.followers().await, expected);
    let rejects: Vec<String> = bridge
        .queued()
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "Reject")
        .map(|(_, inbox)| inbox)
        .collect();
    assert_eq!(
        rejects,
        vec![format!("{}/inbox", a("a3")), format!("{}/inbox", a("a4"))]
    );
    let metrics = bridge.metrics().await;
    for needle in [
        r#"fedibridge_inbox_follows_over_cap_total{cap="per_user"} 1"#,
        r#"fedibridge_inbox_follows_over_cap_total{cap="per_host"} 1"#,
    ] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_beyond_a_hosts_cap_are_rejected_and_not_stored_on_sqlite() {
    follow_caps(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_beyond_a_hosts_cap_are_rejected_and_not_stored_on_postgres() {
    follow_caps(Backend::Postgres).await;
}

/// Opens a connection to `port`, writes `head`, then `drip` one byte every 100 ms, and reads
/// whatever comes back. Returns what was read and how long until the server answered or
/// closed; gives up after `give_up`.
async fn drip(port: u16, head: String, drip: Vec<u8>, give_up: Duration) -> (String, Duration) {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for byte in drip {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
        }
        // Keep the connection open without sending more.
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(give_up, async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    writing.abort();
    assert!(read.is_ok(), "no answer within {give_up:?}");
    (String::from_utf8_lossy(&answer).into_owned(), elapsed)
}

/// A normal request served while a slow client holds its connection, and how long it took.
async fn served_meanwhile(app: &TestApp) -> Duration {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = app.get("/healthz").await.status();
    assert_eq!(status, 200);
    started.elapsed()
}

fn port_of(app: &TestApp) -> u16 {
    Url::parse(&app.address)
        .expect("address")
        .port()
        .expect("port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dribbling_its_headers_is_cut_off_at_the_deadline() {
    let database = TestDatabase::sqlite();
    // One worker: the slow client must not be able to hold it.
    let settings = test_settings(
        &database,
        &[
            ("FEDIBRIDGE__SERVER__WORKERS", "1"),
            ("FEDIBRIDGE__SERVER__CLIENT_REQUEST_TIMEOUT_SECS", "1"),
        ],
    );
    let app = TestApp::spawn_roles(settings, &[bridge::Role::Http]).await;
    let head = "POST /inbox HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_owned();
    // A header line a byte at a time, never ending the head: 10 s if nobody stops it.
    let endless = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec();
    let ((answer, elapsed), normal) = tokio::join!(
        drip(port_of(&app), head, endless, Duration::from_secs(8)),
        served_meanwhile(&app)
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "answered {answer:?}"
    );
    assert!(
        elapsed < Duration::from_secs(3),
        "cut off after {elapsed:?}, the deadline is 1 s"
    );
    assert!(
        normal < Duration::from_secs(1),
        "a normal request took {normal:?}"
    );
    app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dripping_an_inbox_body_gets_408_at_the_deadline() {
    let database = TestDatabase::sqlite();
    let settings = test_settings(
        &database,
        &[
            ("FEDIBRIDGE__SERVER__WORKERS", "1"),
            ("FEDIBRIDGE__INBOX__BODY_TIMEOUT_SECS", "1"),
        ],
    );
    let app = TestApp::spawn_roles(settings, &[bridge::Role::Http]).await;
    let port = port_of(&app);
    let body = br#"{"type":"Follow","padding":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#;
    let head = format!(
        "POST /inbox HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/activity+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let ((answer, elapsed), normal) = tokio::join!(
        drip(port, head, body.to_vec(), Duration::from_secs(8)),
        served_meanwhile(&app)
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "answered {answer:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}, the deadline is 1 s"
    );
    assert!(
        normal < Duration::from_secs(1),
        "a normal request took {normal:?}"
    );
    app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_or_missing_content_length_cannot_make_the_inbox_read_past_its_limit() {
    let database = TestDatabase::sqlite();
    let settings = test_settings(
        &database,
        &[
            ("FEDIBRIDGE__SERVER__MAX_BODY_BYTES", "1024"),
            ("FEDIBRIDGE__INBOX__BODY_TIMEOUT_SECS", "5"),
        ],
    );
    let app = TestApp::spawn_roles(settings, &[bridge::Role::Http]).await;
    let port = port_of(&app);
    let head = |framing: &str| {
        format!(
            "POST /inbox HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/activity+json\r\n{framing}\r\n\r\n"
        )
    };

    // A gigabyte announced and nothing sent: refused on the headers, not after the body
    // deadline (which would answer 408).
    let (answer, elapsed) = drip(
        port,
        head("Content-Length: 1000000000"),
        Vec::new(),
        Duration::from_secs(8),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "answered {answer:?}");
    assert!(
        elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}"
    );

    // No length announced (chunked): reading stops once the body passes the limit.
    let chunk = format!("200\r\n{}\r\n", "a".repeat(0x200));
    let (answer, elapsed) = drip(
        port,
        head("Transfer-Encoding: chunked") + &chunk.repeat(4),
        Vec::new(),
        Duration::from_secs(8),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "answered {answer:?}");
    assert!(
        elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}"
    );
    app.stop().await.expect("stops");
}
