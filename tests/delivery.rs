//! The delivery engine end to end: activities stored through the db functions, a bridge
//! running the delivery role, and fake remote inboxes on loopback that record every
//! request, check its signature and answer what each test programs.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    net::TcpListener,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};
use bridge::{
    Application, Role, Settings,
    db::{
        Database, activities,
        activities::{ActivityId, Priority},
        blocks::InstanceBlockSeverity,
        deliveries, follows, hosts, keys, ledger, posts,
        posts::{FederationState, InteractionPolicy, PostInput, Visibility},
        remote_actors::{self, RemoteActorInput},
        schema::deliveries as deliveries_table,
        user_blocks::BlockTarget,
        users::{self, ProfileInput, User},
    },
    federation::{begin_verify, outbound, urls::Urls},
    moderation::{BlockDomain, domain_blocks},
    opt_in::{Initiator, SharingState, controls, lifecycle::Context},
};
use diesel::prelude::*;
use integration_tests::{
    Backend, TestDatabase,
    peer::{ActivityKind, RemotePeer},
    test_settings,
};
use serde_json::json;

/// What a fake inbox answers to one request.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    /// Answers 202 after this long.
    Slow(Duration),
    /// Never answers in time.
    Hang,
    /// Answers 202 at once, then drips its body a byte every 100 ms for a minute.
    Drip,
}

/// One request a fake inbox received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Default)]
struct InboxState {
    received: Mutex<Vec<Received>>,
    script: Mutex<HashMap<String, VecDeque<Reply>>>,
    default: Mutex<Option<Reply>>,
    /// Requests being answered now, and the most there have been at once.
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
}

/// A remote server on `http://127.0.0.1:PORT` with any number of inbox paths.
struct FakeInbox {
    port: u16,
    state: Arc<InboxState>,
    handle: ServerHandle,
}

async fn inbox_handler(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<InboxState>>,
) -> HttpResponse {
    use std::sync::atomic::Ordering;
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = answer(req, body, &state).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn answer(req: HttpRequest, body: web::Bytes, state: &InboxState) -> HttpResponse {
    let path = req.path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    state.received.lock().expect("lock").push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
    });
    let scripted = state
        .script
        .lock()
        .expect("lock")
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let reply = scripted
        .or_else(|| state.default.lock().expect("lock").clone())
        .unwrap_or(Reply::Status(202));
    match reply {
        Reply::Status(status) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
                .body(format!("answer {status}"))
        }
        Reply::RetryAfter(status, secs) => {
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
                .insert_header(("Retry-After", secs.to_string()))
                .finish()
        }
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            HttpResponse::Accepted().finish()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            HttpResponse::Accepted().finish()
        }
        Reply::Drip => {
            let drops = futures_util::stream::unfold(0u32, |n| async move {
                if n >= 600 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((
                    Ok::<_, std::convert::Infallible>(web::Bytes::from_static(b".")),
                    n + 1,
                ))
            });
            HttpResponse::Accepted().streaming(drops)
        }
    }
}

impl FakeInbox {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let state = Arc::new(InboxState::default());
        let data = web::Data::new(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(inbox_handler))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            port,
            state,
            handle,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn program(&self, path: &str, replies: &[Reply]) {
        self.state
            .script
            .lock()
            .expect("lock")
            .insert(path.to_owned(), replies.iter().cloned().collect());
    }

    fn answer_all(&self, reply: Reply) {
        *self.state.default.lock().expect("lock") = Some(reply);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// The most requests it was answering at once.
    fn most_in_flight(&self) -> usize {
        self.state
            .most_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Checks the request's HTTP signature as a remote server would.
    fn verify(&self, request: &Received, public_key_pem: &str) {
        let pending = begin_verify(
            "POST",
            &request.path,
            request
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
            &request.body,
            &[self.authority()],
            SystemTime::now(),
            Duration::from_secs(300),
        )
        .expect("signature headers are complete and the digest matches");
        pending
            .verify(public_key_pem)
            .expect("signed with the author's key");
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A bridge process running only the delivery role.
struct Bridge {
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), bridge::Error>>,
    metrics: bridge::telemetry::Metrics,
}

impl Bridge {
    async fn start(settings: Settings, roles: &[Role]) -> Self {
        bridge::telemetry::init_tracing(&settings.log);
        let app = Application::build(settings, roles)
            .await
            .expect("application builds");
        let shutdown = app.shutdown_token();
        let metrics = app.state().metrics.clone();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            shutdown,
            task,
            metrics,
        }
    }

    fn delivered(&self) -> u64 {
        self.metrics
            .delivery
            .outcomes
            .with_label_values(&["delivered"])
            .get()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("stops within the grace period")
            .expect("no panic")
            .expect("clean stop");
    }

    /// Kills the process without letting it finish anything.
    async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn settings(db: &TestDatabase, extra: &[(&str, &str)]) -> Settings {
    let mut overrides = vec![
        ("FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true"),
        ("FEDIBRIDGE__DELIVERY__POLL_INTERVAL_MS", "50"),
        ("FEDIBRIDGE__DELIVERY__REQUEST_TIMEOUT_SECS", "3"),
        ("FEDIBRIDGE__DELIVERY__LEASE_SECS", "10"),
    ];
    overrides.extend_from_slice(extra);
    test_settings(db, &overrides)
}

async fn database(settings: &Settings) -> Database {
    let db = Database::new(&settings.database).expect("pool");
    db.migrate().await.expect("migrations");
    db
}

/// A user sharing `on`, with a key; returns it and its public key.
async fn sharing_user(db: &Database, platform_id: &str) -> (User, String) {
    let platform_id = platform_id.to_owned();
    db.write(move |c| {
        let now = bridge::db::now_millis();
        let (user, _) = users::upsert_profile(
            c,
            &ProfileInput {
                platform_user_id: platform_id.clone(),
                username: platform_id.clone(),
                display_name: None,
                bio: None,
                avatar_url: None,
                header_url: None,
                profile_url: None,
                fields: vec![],
                language: None,
                is_public: true,
                is_adult: true,
                is_suspended: false,
                account_created_at: Some(now - 86_400_000 * 365),
            },
            now,
        )?;
        users::set_sharing_state(c, user.id, SharingState::On, "[]", now)?;
        let key = keys::ensure(c, Some(user.id), now)?;
        let user = users::find(c, user.id)?.expect("user");
        Ok((user, key.public_key_pem))
    })
    .await
    .expect("user stored")
}

/// A public, already federated post.
async fn federated_post(db: &Database, user: &User, platform_post_id: &str) -> posts::Post {
    public_post(db, user, platform_post_id, FederationState::Federated).await
}

/// A public post in federation state `state`.
async fn public_post(
    db: &Database,
    user: &User,
    platform_post_id: &str,
    state: FederationState,
) -> posts::Post {
    let (author, id) = (user.id, platform_post_id.to_owned());
    db.write(move |c| {
        let now = bridge::db::now_millis();
        let (post, _) = posts::upsert(
            c,
            author,
            &PostInput {
                platform_post_id: id,
                text: "hello fediverse".into(),
                visibility: Visibility::Public,
                age_restricted: false,
                reply_to_platform_post_id: None,
                reply_to_url: None,
                quote_of_platform_post_id: None,
                quote_of_url: None,
                media: vec![],
                mentions: vec![],
                hashtags: vec![],
                content_warning: None,
                sensitive: false,
                language: None,
                reply_policy: InteractionPolicy::Everyone,
                quote_policy: InteractionPolicy::Everyone,
                via_api: false,
                published_at: now,
                edited_at: None,
            },
            now,
        )?;
        posts::set_federation_state(c, post.id, state, now)?;
        Ok(posts::find(c, post.id)?.expect("post"))
    })
    .await
    .expect("post stored")
}

/// Stores an activity of `user` about `object` and queues it for `inboxes`.
async fn queue(
    db: &Database,
    urls: &Urls,
    kind: &str,
    user: &User,
    object: &str,
    inboxes: &[String],
) -> ActivityId {
    let ap_id = urls.activity(&uuid::Uuid::now_v7().to_string()).to_string();
    let payload = json!({
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": ap_id,
        "type": kind,
        "actor": urls.actor(&user.platform_user_id).to_string(),
        "object": object,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    })
    .to_string();
    let priority = match kind {
        "Delete" | "Undo" | "Block" => Priority::Removal,
        "Accept" | "Reject" => Priority::Response,
        _ => Priority::Content,
    };
    let (kind, user_id, object, inboxes) = (
        kind.to_owned(),
        user.id,
        object.to_owned(),
        inboxes.to_vec(),
    );
    db.write(move |c| {
        let now = bridge::db::now_millis();
        let id = activities::insert(
            c,
            &ap_id,
            &kind,
            Some(user_id),
            Some(&object),
            priority,
            &payload,
            now,
        )?;
        activities::enqueue_deliveries(c, id, &inboxes, priority, now)?;
        Ok(id)
    })
    .await
    .expect("activity queued")
}

/// (inbox, state, attempts, last_status) of every delivery of `activity`.
async fn delivery_rows(
    db: &Database,
    activity: ActivityId,
) -> Vec<(String, String, i32, Option<i32>)> {
    db.run(move |c| {
        Ok(deliveries_table::table
            .filter(deliveries_table::activity_id.eq(activity.0))
            .order(deliveries_table::inbox.asc())
            .select((
                deliveries_table::inbox,
                deliveries_table::state,
                deliveries_table::attempts,
                deliveries_table::last_status,
            ))
            .load(c)?)
    })
    .await
    .expect("deliveries read")
}

/// Waits until no delivery of `activity` is pending (or panics after `limit`).
async fn settled(db: &Database, activity: ActivityId, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let rows = delivery_rows(db, activity).await;
        if rows.iter().all(|(_, state, _, _)| state != "pending") {
            return;
        }
        assert!(Instant::now() < deadline, "still pending: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(db) = TestDatabase::new(Backend::Sqlite) {
                    $body(db).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = TestDatabase::new(Backend::Postgres) {
                    $body(db).await;
                }
            }
        }
    };
}

on_both_backends!(
    each_inbox_gets_one_signed_post,
    each_inbox_gets_one_signed_post_body
);
async fn each_inbox_gets_one_signed_post_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, public_pem) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let note = urls.note(&post.platform_post_id).to_string();
    let one = FakeInbox::start().await;
    let two = FakeInbox::start().await;
    let inboxes = vec![
        one.url("/inbox"),
        one.url("/users/x/inbox"),
        two.url("/inbox"),
    ];
    let activity = queue(&db, &urls, "Create", &alice, &note, &inboxes).await;

    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    settled(&db, activity, Duration::from_secs(10)).await;
    // Nothing more arrives once everything is delivered.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let payload = db
        .run(move |c| activities::find(c, activity))
        .await
        .expect("read")
        .expect("activity")
        .payload;
    for (server, path) in [(&one, "/inbox"), (&one, "/users/x/inbox"), (&two, "/inbox")] {
        let got = server.received_at(path);
        assert_eq!(got.len(), 1, "{path} got exactly one POST");
        server.verify(&got[0], &public_pem);
        assert_eq!(got[0].body, payload.as_bytes(), "the stored payload, as is");
    }
    let rows = delivery_rows(&db, activity).await;
    assert!(
        rows.iter()
            .all(|(_, state, attempts, status)| state == "delivered"
                && *attempts == 1
                && *status == Some(202)),
        "{rows:?}"
    );
    let mut held = db
        .run(move |c| ledger::inboxes_for_object(c, &note))
        .await
        .expect("ledger");
    held.sort();
    let mut expected = inboxes.clone();
    expected.sort();
    // The ledger keeps one inbox per host: the two inboxes of `one` are one server.
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().all(|i| expected.contains(i)));
    bridge.stop().await;
    one.stop().await;
    two.stop().await;
}

on_both_backends!(server_errors_are_retried, server_errors_are_retried_body);
async fn server_errors_are_retried_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let inbox = FakeInbox::start().await;
    // Retry-After keeps the test short; without it the first retry waits 7.5–15 s.
    inbox.program("/inbox", &[Reply::RetryAfter(500, 1), Reply::Status(202)]);
    let activity = queue(
        &db,
        &urls,
        "Create",
        &alice,
        urls.note(&post.platform_post_id).as_str(),
        &[inbox.url("/inbox")],
    )
    .await;
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    settled(&db, activity, Duration::from_secs(10)).await;
    let got = inbox.received_at("/inbox");
    assert_eq!(got.len(), 2);
    assert!(got[1].at - got[0].at >= Duration::from_millis(900));
    let rows = delivery_rows(&db, activity).await;
    assert_eq!(rows[0].1, "delivered");
    assert_eq!(rows[0].2, 2, "both attempts counted");
    let host = inbox.authority();
    let health = db
        .run(move |c| hosts::find(c, &host))
        .await
        .expect("read")
        .expect("the failure was recorded");
    assert_eq!(health.consecutive_failures, 0, "the success closed the run");
    bridge.stop().await;
    inbox.stop().await;
}

on_both_backends!(retry_after_is_honoured, retry_after_is_honoured_body);
async fn retry_after_is_honoured_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let inbox = FakeInbox::start().await;
    inbox.program("/inbox", &[Reply::RetryAfter(429, 2), Reply::Status(202)]);
    let activity = queue(
        &db,
        &urls,
        "Create",
        &alice,
        urls.note(&post.platform_post_id).as_str(),
        &[inbox.url("/inbox")],
    )
    .await;
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    wait_until(Duration::from_secs(5), "the first attempt", || {
        !inbox.received().is_empty()
    })
    .await;
    // The whole host is held, not only this delivery.
    let deadline = Instant::now() + Duration::from_secs(2);
    let blocked = loop {
        let host = inbox.authority();
        let health = db.run(move |c| hosts::find(c, &host)).await.expect("read");
        if health.as_ref().is_some_and(|h| h.blocked_until.is_some()) || Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let later = queue(
        &db,
        &urls,
        "Update",
        &alice,
        urls.actor(&alice.platform_user_id).as_str(),
        &[inbox.url("/other")],
    )
    .await;
    settled(&db, activity, Duration::from_secs(10)).await;
    settled(&db, later, Duration::from_secs(10)).await;
    let first = inbox.received_at("/inbox");
    assert_eq!(first.len(), 2);
    assert!(
        first[1].at - first[0].at >= Duration::from_millis(1900),
        "retried after {:?}",
        first[1].at - first[0].at
    );
    let other = inbox.received_at("/other");
    assert_eq!(other.len(), 1);
    assert!(
        other[0].at - first[0].at >= Duration::from_millis(1500),
        "the host was held"
    );
    assert!(
        blocked.is_some_and(|h| h.blocked_until.is_some()),
        "Retry-After blocked the host"
    );
    bridge.stop().await;
    inbox.stop().await;
}

on_both_backends!(gone_inbox_loses_its_followers, gone_inbox_body);
async fn gone_inbox_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let inbox = FakeInbox::start().await;
    inbox.program("/users/bob/inbox", &[Reply::Status(410)]);
    let (gone_inbox, kept_inbox) = (
        inbox.url("/users/bob/inbox"),
        inbox.url("/users/carol/inbox"),
    );
    let user = alice.id;
    let (bob, carol) = {
        let (gone, kept) = (gone_inbox.clone(), kept_inbox.clone());
        let base = inbox.url("");
        db.write(move |c| {
            let now = bridge::db::now_millis();
            let mut ids = Vec::new();
            for (name, inbox) in [("bob", gone), ("carol", kept)] {
                let actor = remote_actors::upsert(
                    c,
                    &RemoteActorInput {
                        ap_id: format!("{base}/users/{name}"),
                        host: "127.0.0.1".into(),
                        kind: "Person".into(),
                        preferred_username: Some(name.into()),
                        name: None,
                        url: None,
                        icon_url: None,
                        inbox,
                        shared_inbox: None,
                        public_key_id: None,
                        public_key_pem: None,
                        moved_to: None,
                    },
                    now,
                )?;
                follows::upsert(
                    c,
                    user,
                    actor.id,
                    &format!("{base}/follows/{name}"),
                    follows::FollowState::Accepted,
                    now,
                )?;
                ids.push(actor.id);
            }
            Ok((ids[0], ids[1]))
        })
        .await
        .expect("followers stored")
    };
    let activity = queue(
        &db,
        &urls,
        "Create",
        &alice,
        urls.note(&post.platform_post_id).as_str(),
        &[gone_inbox.clone(), kept_inbox.clone()],
    )
    .await;
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    settled(&db, activity, Duration::from_secs(10)).await;
    let rows = delivery_rows(&db, activity).await;
    let gone_row = rows.iter().find(|r| r.0 == gone_inbox).expect("row");
    assert_eq!((gone_row.1.as_str(), gone_row.3), ("failed", Some(410)));
    let (bob_follows, carol_follows) = db
        .run(move |c| Ok((follows::find(c, user, bob)?, follows::find(c, user, carol)?)))
        .await
        .expect("read");
    assert!(bob_follows.is_none(), "the gone follower was removed");
    assert!(carol_follows.is_some(), "others stay");
    bridge.stop().await;
    inbox.stop().await;
}

on_both_backends!(client_errors_are_final, client_errors_are_final_body);
async fn client_errors_are_final_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let inbox = FakeInbox::start().await;
    inbox.program("/inbox", &[Reply::Status(400), Reply::Status(202)]);
    let activity = queue(
        &db,
        &urls,
        "Create",
        &alice,
        urls.note(&post.platform_post_id).as_str(),
        &[inbox.url("/inbox")],
    )
    .await;
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    settled(&db, activity, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(inbox.received().len(), 1, "never retried");
    let error: Option<String> = db
        .run(move |c| {
            Ok(deliveries_table::table
                .filter(deliveries_table::activity_id.eq(activity.0))
                .select(deliveries_table::last_error)
                .first(c)?)
        })
        .await
        .expect("read");
    assert_eq!(delivery_rows(&db, activity).await[0].1, "failed");
    assert_eq!(
        error.as_deref(),
        Some("answer 400"),
        "the body excerpt is kept"
    );
    bridge.stop().await;
    inbox.stop().await;
}

on_both_backends!(
    silent_dripping_and_unauthorized_inboxes_end_within_the_deadline,
    misbehaving_inboxes_body
);
async fn misbehaving_inboxes_body(test_db: TestDatabase) {
    let settings = settings(
        &test_db,
        &[
            ("FEDIBRIDGE__DELIVERY__REQUEST_TIMEOUT_SECS", "1"),
            ("FEDIBRIDGE__DELIVERY__LEASE_SECS", "5"),
        ],
    );
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let inbox = FakeInbox::start().await;
    inbox.program("/silent", &[Reply::Hang]);
    inbox.program("/drip", &[Reply::Drip]);
    inbox.program("/unauthorized", &[Reply::Status(401)]);
    let paths = ["/silent", "/drip", "/unauthorized", "/fine"];
    let targets: Vec<String> = paths.iter().map(|p| inbox.url(p)).collect();
    let activity = queue(
        &db,
        &urls,
        "Create",
        &alice,
        urls.note(&post.platform_post_id).as_str(),
        &targets,
    )
    .await;
    let started = Instant::now();
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    // Invariant: every attempt ends within the request deadline, whatever the host does,
    // and its outcome is recorded: a retry for silence and dripping, final for 401.
    let deadline = Instant::now() + Duration::from_secs(8);
    let rows = loop {
        let rows = delivery_errors(&db, activity).await;
        if rows.values().all(|(_, attempts, _)| *attempts >= 1) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "attempts not all recorded: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    for path in ["/silent", "/drip"] {
        let (state, attempts, error) = &rows[&inbox.url(path)];
        assert_eq!(
            (state.as_str(), *attempts),
            ("pending", 1),
            "{path}: retried later"
        );
        let error = error.as_deref().unwrap_or_default();
        assert!(error.contains("no answer within"), "{path}: {error}");
    }
    let unauthorized = delivery_rows(&db, activity)
        .await
        .into_iter()
        .find(|r| r.0 == inbox.url("/unauthorized"))
        .expect("row");
    assert_eq!(
        (unauthorized.1.as_str(), unauthorized.3),
        ("failed", Some(401)),
        "refused for good, never retried"
    );
    assert_eq!(rows[&inbox.url("/fine")].0, "delivered");
    assert_eq!(inbox.received_at("/unauthorized").len(), 1);
    bridge.stop().await;
    inbox.stop().await;
}

on_both_backends!(slow_and_dead_hosts_do_not_delay_others, isolation_body);
async fn isolation_body(test_db: TestDatabase) {
    let settings = settings(
        &test_db,
        &[
            ("FEDIBRIDGE__DELIVERY__CONCURRENCY", "6"),
            ("FEDIBRIDGE__DELIVERY__PER_HOST_CONCURRENCY", "2"),
            ("FEDIBRIDGE__DELIVERY__REQUEST_TIMEOUT_SECS", "8"),
            ("FEDIBRIDGE__DELIVERY__LEASE_SECS", "30"),
        ],
    );
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let hung = FakeInbox::start().await;
    hung.answer_all(Reply::Hang);
    let healthy = FakeInbox::start().await;
    let dead = format!("http://127.0.0.1:{}/inbox", dead_port());
    // The slow and dead hosts' backlog is older, so it comes first in the queue.
    for n in 0..20 {
        let post = federated_post(&db, &alice, &format!("backlog{n}")).await;
        queue(
            &db,
            &urls,
            "Create",
            &alice,
            urls.note(&post.platform_post_id).as_str(),
            &[hung.url(&format!("/inbox{n}")), dead.clone()],
        )
        .await;
    }
    let mut fresh = Vec::new();
    for n in 0..5 {
        let post = federated_post(&db, &alice, &format!("fresh{n}")).await;
        fresh.push(
            queue(
                &db,
                &urls,
                "Create",
                &alice,
                urls.note(&post.platform_post_id).as_str(),
                &[healthy.url(&format!("/inbox{n}"))],
            )
            .await,
        );
    }
    let started = Instant::now();
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    wait_until(
        Duration::from_secs(4),
        "the healthy host's deliveries",
        || healthy.received().len() >= 5,
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    for activity in fresh {
        settled(&db, activity, Duration::from_secs(5)).await;
    }
    // The hung host never had more than its share in flight.
    assert!(
        hung.received().len() <= 2,
        "hung host got {}",
        hung.received().len()
    );
    assert_eq!(healthy.received().len(), 5);
    bridge.stop().await;
    healthy.stop().await;
    hung.stop().await;
}

on_both_backends!(per_object_order_is_kept, order_body);
async fn order_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let note = urls.note(&post.platform_post_id).to_string();
    let inbox = FakeInbox::start().await;
    inbox.program("/inbox", &[Reply::RetryAfter(503, 1)]);
    let target = [inbox.url("/inbox")];
    let create = queue(&db, &urls, "Create", &alice, &note, &target).await;
    let update = queue(&db, &urls, "Update", &alice, &note, &target).await;
    let delete = queue(&db, &urls, "Delete", &alice, &note, &target).await;
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    for activity in [create, update, delete] {
        settled(&db, activity, Duration::from_secs(15)).await;
    }
    let kinds: Vec<String> = inbox
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().expect("type").to_owned())
        .collect();
    assert_eq!(kinds, ["Create", "Create", "Update", "Delete"]);
    bridge.stop().await;
    inbox.stop().await;
}

on_both_backends!(withdrawn_consent_stops_sending, consent_body);
async fn consent_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let (bob, _) = sharing_user(&db, "bob").await;
    let private = federated_post(&db, &alice, "made-private").await;
    let bobs = federated_post(&db, &bob, "bobs").await;
    let inbox = FakeInbox::start().await;
    let targets = [inbox.url("/a"), inbox.url("/b")];
    let private_note = urls.note(&private.platform_post_id).to_string();
    let bobs_note = urls.note(&bobs.platform_post_id).to_string();
    let create_private = queue(&db, &urls, "Create", &alice, &private_note, &targets).await;
    let create_bob = queue(&db, &urls, "Create", &bob, &bobs_note, &targets).await;
    let update_bob = queue(&db, &urls, "Update", &bob, &bobs_note, &targets).await;
    let delete_bob = queue(&db, &urls, "Delete", &bob, &bobs_note, &targets).await;
    // After enqueue, before send: the post turns private, the other author opts out.
    let (post_id, bob_id) = (private.id, bob.id);
    db.write(move |c| {
        use bridge::db::schema::posts as p;
        diesel::update(p::table.find(post_id.0))
            .set(p::visibility.eq(Visibility::Private.as_str()))
            .execute(c)?;
        users::set_sharing_state(c, bob_id, SharingState::Off, "[]", bridge::db::now_millis())
    })
    .await
    .expect("changes stored");
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    for activity in [create_private, create_bob, update_bob, delete_bob] {
        settled(&db, activity, Duration::from_secs(10)).await;
    }
    for activity in [create_private, create_bob, update_bob] {
        let rows = delivery_rows(&db, activity).await;
        assert!(
            rows.iter().all(|r| r.1 == "dropped" && r.2 == 0),
            "{rows:?}"
        );
    }
    let kinds: Vec<String> = inbox
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().expect("type").to_owned())
        .collect();
    assert_eq!(kinds, ["Delete", "Delete"], "only the Delete left");
    bridge.stop().await;
    inbox.stop().await;
}

/// (state, attempts, last_error) of every delivery of `activity`, by inbox.
async fn delivery_errors(
    db: &Database,
    activity: ActivityId,
) -> HashMap<String, (String, i32, Option<String>)> {
    db.run(move |c| {
        let rows: Vec<(String, String, i32, Option<String>)> = deliveries_table::table
            .filter(deliveries_table::activity_id.eq(activity.0))
            .select((
                deliveries_table::inbox,
                deliveries_table::state,
                deliveries_table::attempts,
                deliveries_table::last_error,
            ))
            .load(c)?;
        Ok(rows
            .into_iter()
            .map(|(inbox, state, attempts, error)| (inbox, (state, attempts, error)))
            .collect())
    })
    .await
    .expect("deliveries read")
}

/// Waits until no delivery at all is pending.
async fn all_settled(db: &Database, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let pending = db.run(deliveries::pending_count).await.expect("count");
        if pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{pending} still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (activity type, actor) of every request `path` received.
fn kinds_at(server: &FakeInbox, path: &str) -> BTreeSet<(String, String)> {
    server
        .received_at(path)
        .iter()
        .map(|r| {
            let json = r.json();
            (
                json["type"].as_str().expect("type").to_owned(),
                json["actor"].as_str().expect("actor").to_owned(),
            )
        })
        .collect()
}

on_both_backends!(
    a_server_rejected_after_queueing_gets_no_content,
    server_block_body
);
async fn server_block_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let note = urls.note(&post.platform_post_id).to_string();
    let blocked = FakeInbox::start().await;
    let open = FakeInbox::start().await;
    // Reached by name: blocks name domains, not addresses.
    let blocked_inbox = format!("http://localhost:{}/inbox", blocked.port);
    // A subdomain of the blocked server. It does not resolve: were it not dropped, its
    // delivery would fail and stay pending for a retry.
    let subdomain_inbox = format!("http://mirror.localhost:{}/inbox", blocked.port);
    let open_inbox = open.url("/inbox");
    let targets = [
        blocked_inbox.clone(),
        subdomain_inbox.clone(),
        open_inbox.clone(),
    ];
    let create = queue(&db, &urls, "Create", &alice, &note, &targets).await;
    let announce = queue(&db, &urls, "Announce", &alice, &note, &targets).await;
    let delete = queue(
        &db,
        &urls,
        "Delete",
        &alice,
        &note,
        std::slice::from_ref(&blocked_inbox),
    )
    .await;

    // Queued, not yet sent: the operator rejects the server, spelled any way.
    let (rules, block_urls) = (settings.sharing.clone(), urls.clone());
    db.write(move |c| {
        let cx = Context {
            rules: &rules,
            urls: &block_urls,
            initiator: Initiator::Operator,
            now: bridge::db::now_millis(),
        };
        let domain = BlockDomain::parse("LocalHost.").expect("a domain");
        domain_blocks::add(c, &domain, InstanceBlockSeverity::Reject, None, cx)
    })
    .await
    .expect("blocked");

    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    for activity in [create, announce, delete] {
        settled(&db, activity, Duration::from_secs(10)).await;
    }
    let actor = urls.actor(&alice.platform_user_id).to_string();
    assert_eq!(
        kinds_at(&blocked, "/inbox"),
        BTreeSet::from([("Delete".to_owned(), actor.clone())]),
        "only the Delete reached the blocked server"
    );
    assert_eq!(
        kinds_at(&open, "/inbox"),
        BTreeSet::from([
            ("Announce".to_owned(), actor.clone()),
            ("Create".to_owned(), actor.clone())
        ]),
        "other servers get everything"
    );
    for activity in [create, announce] {
        let rows = delivery_errors(&db, activity).await;
        for inbox in [&blocked_inbox, &subdomain_inbox] {
            assert_eq!(
                rows[inbox],
                ("dropped".to_owned(), 0, Some("server blocked".to_owned())),
                "{inbox}"
            );
        }
        assert_eq!(rows[&open_inbox].0, "delivered");
    }
    assert_eq!(
        delivery_errors(&db, delete).await[&blocked_inbox].0,
        "delivered"
    );
    bridge.stop().await;
    blocked.stop().await;
    open.stop().await;
}

on_both_backends!(
    an_authors_block_after_queueing_stops_her_content_there,
    author_block_body
);
async fn author_block_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let (bob, _) = sharing_user(&db, "bob").await;
    let alices = federated_post(&db, &alice, "a1").await;
    let bobs = federated_post(&db, &bob, "b1").await;
    // Eve and frank live on `one`, which also has a shared inbox; `two` is reached by name.
    let one = FakeInbox::start().await;
    let two = FakeInbox::start().await;
    let eve = one.url("/users/eve");
    let eve_input = RemoteActorInput {
        ap_id: eve.clone(),
        host: one.authority(),
        kind: "Person".into(),
        preferred_username: Some("eve".into()),
        name: None,
        url: None,
        icon_url: None,
        inbox: one.url("/users/eve/inbox"),
        shared_inbox: Some(one.url("/inbox")),
        public_key_id: None,
        public_key_pem: None,
        moved_to: None,
    };
    db.write(move |c| remote_actors::upsert(c, &eve_input, bridge::db::now_millis()))
        .await
        .expect("eve stored");
    let (eve_inbox, frank_inbox, shared_inbox, two_inbox) = (
        one.url("/users/eve/inbox"),
        one.url("/users/frank/inbox"),
        one.url("/inbox"),
        format!("http://localhost:{}/inbox", two.port),
    );
    let targets = [
        eve_inbox.clone(),
        frank_inbox.clone(),
        shared_inbox.clone(),
        two_inbox.clone(),
    ];
    let alices_note = urls.note(&alices.platform_post_id).to_string();
    let bobs_note = urls.note(&bobs.platform_post_id).to_string();
    let from_alice = queue(&db, &urls, "Create", &alice, &alices_note, &targets).await;
    let from_bob = queue(&db, &urls, "Create", &bob, &bobs_note, &targets).await;

    // Queued, not yet sent: alice blocks eve, and `two` spelled any way.
    let (rules, block_urls) = (settings.sharing.clone(), urls.clone());
    let (blocker, blocked_actor) = (alice.clone(), eve.clone());
    db.write(move |c| {
        let cx = Context {
            rules: &rules,
            urls: &block_urls,
            initiator: Initiator::User,
            now: bridge::db::now_millis(),
        };
        let domain = BlockDomain::parse("LocalHost.").expect("a domain");
        controls::block(c, &blocker, &BlockTarget::Actor(blocked_actor), cx)?;
        controls::block(c, &blocker, &BlockTarget::Domain(domain), cx)
    })
    .await
    .expect("blocked");

    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    all_settled(&db, Duration::from_secs(10)).await;
    let (alice_actor, bob_actor) = (
        urls.actor(&alice.platform_user_id).to_string(),
        urls.actor(&bob.platform_user_id).to_string(),
    );
    let create = |actor: &str| ("Create".to_owned(), actor.to_owned());
    assert_eq!(
        kinds_at(&one, "/users/eve/inbox"),
        BTreeSet::from([
            create(&bob_actor),
            ("Block".to_owned(), alice_actor.clone())
        ]),
        "eve gets alice's Block, not her post"
    );
    for path in ["/users/frank/inbox", "/inbox"] {
        assert_eq!(
            kinds_at(&one, path),
            BTreeSet::from([create(&alice_actor), create(&bob_actor)]),
            "{path}: an account block stops only that account's own inbox"
        );
    }
    assert_eq!(
        kinds_at(&two, "/inbox"),
        BTreeSet::from([create(&bob_actor)]),
        "the server alice blocked gets only bob's post"
    );
    let rows = delivery_errors(&db, from_alice).await;
    assert_eq!(
        rows[&eve_inbox],
        (
            "dropped".to_owned(),
            0,
            Some("account blocked by the author".to_owned())
        )
    );
    assert_eq!(
        rows[&two_inbox],
        (
            "dropped".to_owned(),
            0,
            Some("server blocked by the author".to_owned())
        )
    );
    for inbox in [&frank_inbox, &shared_inbox] {
        assert_eq!(rows[inbox].0, "delivered", "{inbox}");
    }
    let rows = delivery_errors(&db, from_bob).await;
    assert!(rows.values().all(|r| r.0 == "delivered"), "{rows:?}");
    bridge.stop().await;
    one.stop().await;
    two.stop().await;
}

on_both_backends!(a_crash_mid_fan_out_is_resumed, crash_body);
async fn crash_body(test_db: TestDatabase) {
    let extra = [
        ("FEDIBRIDGE__DELIVERY__CONCURRENCY", "4"),
        ("FEDIBRIDGE__DELIVERY__PER_HOST_CONCURRENCY", "4"),
        ("FEDIBRIDGE__DELIVERY__LEASE_SECS", "4"),
    ];
    let settings_one = settings(&test_db, &extra);
    let urls = Urls::new(&settings_one.federation).expect("urls");
    let db = database(&settings_one).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let inbox = FakeInbox::start().await;
    inbox.answer_all(Reply::Slow(Duration::from_millis(150)));
    let targets: Vec<String> = (0..30).map(|n| inbox.url(&format!("/i{n}"))).collect();
    let activity = queue(
        &db,
        &urls,
        "Create",
        &alice,
        urls.note(&post.platform_post_id).as_str(),
        &targets,
    )
    .await;
    let first = Bridge::start(settings_one, &[Role::Delivery]).await;
    wait_until(Duration::from_secs(10), "part of the fan-out", || {
        inbox.received().len() >= 8
    })
    .await;
    first.crash().await;
    let before_restart = inbox.received().len();
    assert!(before_restart < 30, "the crash came mid fan-out");
    let second = Bridge::start(settings(&test_db, &extra), &[Role::Delivery]).await;
    settled(&db, activity, Duration::from_secs(30)).await;
    let received = inbox.received();
    for target in &targets {
        let path = target.trim_start_matches(&inbox.url(""));
        assert!(
            received.iter().any(|r| r.path == path),
            "{path} never got it"
        );
    }
    assert!(
        received.len() <= 30 + 4,
        "duplicates beyond the in-flight window: {}",
        received.len()
    );
    second.stop().await;
    inbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_queue_without_double_delivery() {
    let Some(test_db) = TestDatabase::new(Backend::Postgres) else {
        return;
    };
    let extra = [
        ("FEDIBRIDGE__DELIVERY__CONCURRENCY", "8"),
        ("FEDIBRIDGE__DELIVERY__BATCH_SIZE", "5"),
    ];
    let settings_one = settings(&test_db, &extra);
    let urls = Urls::new(&settings_one.federation).expect("urls");
    let db = database(&settings_one).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let servers = [
        FakeInbox::start().await,
        FakeInbox::start().await,
        FakeInbox::start().await,
    ];
    for server in &servers {
        server.answer_all(Reply::Slow(Duration::from_millis(30)));
    }
    let mut activities = Vec::new();
    for n in 0..3 {
        let post = federated_post(&db, &alice, &format!("p{n}")).await;
        let targets: Vec<String> = servers
            .iter()
            .flat_map(|s| (0..20).map(move |i| s.url(&format!("/i{i}"))))
            .collect();
        activities.push(
            queue(
                &db,
                &urls,
                "Create",
                &alice,
                urls.note(&post.platform_post_id).as_str(),
                &targets,
            )
            .await,
        );
    }
    let one = Bridge::start(settings_one, &[Role::Delivery]).await;
    let two = Bridge::start(settings(&test_db, &extra), &[Role::Delivery]).await;
    for activity in &activities {
        settled(&db, *activity, Duration::from_secs(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for server in &servers {
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for request in server.received() {
            let id = request.json()["id"].as_str().expect("id").to_owned();
            *seen.entry((request.path.clone(), id)).or_default() += 1;
        }
        assert_eq!(seen.len(), 60, "every (activity, inbox) reached");
        assert!(
            seen.values().all(|n| *n == 1),
            "no double delivery: {seen:?}"
        );
    }
    let done: i64 = db.run(deliveries::pending_count).await.expect("count");
    assert_eq!(done, 0);
    let (by_one, by_two) = (one.delivered(), two.delivered());
    assert_eq!(by_one + by_two, 180);
    assert!(
        by_one > 0 && by_two > 0,
        "both processes worked: {by_one} + {by_two}"
    );
    one.stop().await;
    two.stop().await;
    for server in servers {
        server.stop().await;
    }
}

on_both_backends!(an_independent_peer_accepts_our_create, peer_body);
async fn peer_body(test_db: TestDatabase) {
    let peer = RemotePeer::start("bob").await;
    // The peer's library accepts only DNS host names, so our actor lives at localhost:PORT.
    let port = dead_port();
    let (bind, base, domain) = (
        format!("127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("localhost:{port}"),
    );
    let settings = settings(
        &test_db,
        &[
            ("FEDIBRIDGE__SERVER__BIND", &bind),
            ("FEDIBRIDGE__FEDERATION__BASE_URL", &base),
            ("FEDIBRIDGE__FEDERATION__DOMAIN", &domain),
        ],
    );
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = public_post(&db, &alice, "hello", FederationState::Never).await;
    let note = urls.note(&post.platform_post_id);
    let follower = RemoteActorInput {
        ap_id: peer.actor_id().to_string(),
        host: peer.domain(),
        kind: "Person".into(),
        preferred_username: Some("bob".into()),
        name: None,
        url: None,
        icon_url: None,
        inbox: peer.inbox().to_string(),
        shared_inbox: Some(peer.shared_inbox().to_string()),
        public_key_id: Some(format!("{}#main-key", peer.actor_id())),
        public_key_pem: Some(peer.public_key_pem()),
        moved_to: None,
    };
    let publish_urls = urls.clone();
    let activity = db
        .write(move |c| {
            let now = bridge::db::now_millis();
            let actor = remote_actors::upsert(c, &follower, now)?;
            follows::upsert(
                c,
                alice.id,
                actor.id,
                &format!("{}/follows/1", follower.ap_id),
                follows::FollowState::Accepted,
                now,
            )?;
            outbound::publish_post(c, &post, &alice, &publish_urls, now)
        })
        .await
        .expect("published")
        .expect("a Create was queued");

    let bridge = Bridge::start(settings, &[Role::Http, Role::Delivery]).await;
    let create = peer
        .wait_for(
            |a| a.kind == ActivityKind::Create && a.object_id().as_ref() == Some(&note),
            Duration::from_secs(15),
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "the peer verified and accepted our Create; rejections: {:?}",
                peer.rejections()
            )
        });
    assert_eq!(create.actor, urls.actor("alice"));
    assert_eq!(create.object["content"], "<p>hello fediverse</p>");
    for field in ["bto", "bcc"] {
        assert!(
            create.json.get(field).is_none() && create.object.get(field).is_none(),
            "{field} is never sent"
        );
    }
    settled(&db, activity, Duration::from_secs(5)).await;
    let rows = delivery_rows(&db, activity).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "delivered");
    assert_eq!(rows[0].0, peer.shared_inbox().to_string());
    bridge.stop().await;
}

on_both_backends!(an_old_failing_delivery_expires, expiry_body);
async fn expiry_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[("FEDIBRIDGE__DELIVERY__MAX_AGE_HOURS", "1")]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let inbox = FakeInbox::start().await;
    inbox.answer_all(Reply::Status(500));
    let note = urls.note(&post.platform_post_id).to_string();
    let old = queue(&db, &urls, "Create", &alice, &note, &[inbox.url("/old")]).await;
    let young = queue(&db, &urls, "Update", &alice, &note, &[inbox.url("/young")]).await;
    // Queued two hours ago, beyond the one-hour retry window.
    db.write(move |c| {
        diesel::update(deliveries_table::table.filter(deliveries_table::activity_id.eq(old.0)))
            .set(deliveries_table::created_at.eq(bridge::db::now_millis() - 2 * 3_600_000))
            .execute(c)?;
        Ok(())
    })
    .await
    .expect("aged");
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    settled(&db, old, Duration::from_secs(10)).await;
    let rows = delivery_rows(&db, old).await;
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2, rows[0].3),
        ("expired", 1, Some(500))
    );
    wait_until(
        Duration::from_secs(5),
        "the young delivery's attempt",
        || !inbox.received_at("/young").is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = delivery_rows(&db, young).await;
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2),
        ("pending", 1),
        "a young delivery is retried later"
    );
    bridge.stop().await;
    inbox.stop().await;
}

on_both_backends!(
    a_send_that_outlived_its_lease_cannot_overwrite_the_next_claim,
    stale_lease_body
);
async fn stale_lease_body(test_db: TestDatabase) {
    use bridge::{
        delivery::outcome::{self, Leased, Limits, Outcome},
        telemetry::Metrics,
    };
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let note = urls.note(&post.platform_post_id).to_string();
    let inboxes = [
        "https://one.example/inbox".to_owned(),
        "https://two.example/inbox".to_owned(),
    ];
    let activity = queue(&db, &urls, "Create", &alice, &note, &inboxes).await;
    // Process A claims both with a lease that has ended by the time process B claims them.
    let start = bridge::db::now_millis();
    let (a_lease, b_lease) = (start + 1, start + 60_000);
    let claim = |owner: &'static str, now: i64, until: i64| {
        db.write(move |c| {
            let hosts = HashMap::new();
            let room = deliveries::HostRoom {
                default: 10,
                hosts: &hosts,
            };
            deliveries::claim_due(c, owner, now, until, 10, &room)
        })
    };
    let by_a = claim("a", start, a_lease).await.expect("A claims");
    let by_b = claim("b", start + 2, b_lease).await.expect("B claims");
    assert_eq!(
        (by_a.len(), by_b.len()),
        (2, 2),
        "B takes over A's expired claim"
    );
    let id_of = |inbox: &str| by_b.iter().find(|d| d.inbox == inbox).expect("claimed").id;
    let (one, two) = (id_of(&inboxes[0]), id_of(&inboxes[1]));
    let limits = Limits {
        max_age_ms: 3_600_000,
        unavailable_after_ms: 86_400_000,
    };
    let write = |owner: &str, outcomes: Vec<Leased>| {
        let metrics = Metrics::new().expect("metrics").delivery;
        let (tx, writer) = outcome::spawn_writer(db.clone(), metrics, limits, owner.to_owned());
        async move {
            for leased in outcomes {
                tx.send(leased).await.expect("writer running");
            }
            drop(tx);
            writer.await.expect("writer finished");
        }
    };
    let delivered = |id: i64, host: &str| Outcome::Delivered {
        id,
        host: host.to_owned(),
        status: 202,
        ledger: None,
    };
    let retry = |id: i64, host: &str| Outcome::Retry {
        id,
        host: host.to_owned(),
        attempts: 0,
        created_at: start,
        status: Some(503),
        error: "unavailable".to_owned(),
        retry_after: None,
        block_host: false,
    };
    // B delivered to one.example; A's late failure there must not make it pending again.
    // A's late success at two.example must not finish what B still holds.
    write(
        "b",
        vec![Leased {
            lease_until: b_lease,
            outcome: delivered(one, "one.example"),
        }],
    )
    .await;
    write(
        "a",
        vec![
            Leased {
                lease_until: a_lease,
                outcome: retry(one, "one.example"),
            },
            Leased {
                lease_until: a_lease,
                outcome: delivered(two, "two.example"),
            },
        ],
    )
    .await;
    let rows = delivery_rows(&db, activity).await;
    assert_eq!(
        rows.iter()
            .map(|(inbox, state, attempts, _)| (inbox.as_str(), state.as_str(), *attempts))
            .collect::<Vec<_>>(),
        vec![
            ("https://one.example/inbox", "delivered", 1),
            ("https://two.example/inbox", "pending", 0),
        ],
        "stale outcomes are not written"
    );
    // B's own outcome for two.example still applies.
    write(
        "b",
        vec![Leased {
            lease_until: b_lease,
            outcome: retry(two, "two.example"),
        }],
    )
    .await;
    let rows = delivery_rows(&db, activity).await;
    assert_eq!(
        (rows[1].1.as_str(), rows[1].2, rows[1].3),
        ("pending", 1, Some(503))
    );
}

on_both_backends!(
    a_backlog_on_one_host_costs_no_claim_per_delivery,
    backlog_body
);
async fn backlog_body(test_db: TestDatabase) {
    let settings = settings(
        &test_db,
        &[
            ("FEDIBRIDGE__DELIVERY__CONCURRENCY", "32"),
            ("FEDIBRIDGE__DELIVERY__PER_HOST_CONCURRENCY", "4"),
        ],
    );
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let inbox = FakeInbox::start().await;
    inbox.answer_all(Reply::Slow(Duration::from_millis(20)));
    let targets: Vec<String> = (0..150).map(|n| inbox.url(&format!("/i{n}"))).collect();
    let note = urls.note(&post.platform_post_id).to_string();
    let activity = queue(&db, &urls, "Create", &alice, &note, &targets).await;
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    settled(&db, activity, Duration::from_secs(30)).await;
    let rows = delivery_rows(&db, activity).await;
    assert!(
        rows.iter()
            .all(|(_, state, attempts, _)| state == "delivered" && *attempts == 1)
    );
    assert_eq!(inbox.received().len(), 150, "each inbox got it once");
    // The host's backlog waits in the process's queue, still leased, instead of being
    // claimed and given back after every send (which cost ~28 releases per delivery here).
    let released = bridge
        .metrics
        .delivery
        .outcomes
        .with_label_values(&["released"])
        .get();
    assert!(
        released < 150,
        "{released} claimed deliveries were given back"
    );
    bridge.stop().await;
    inbox.stop().await;
}

on_both_backends!(
    a_claim_takes_higher_priority_first_then_the_longest_due,
    claim_order_body
);
async fn claim_order_body(test_db: TestDatabase) {
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let note = urls.note(&post.platform_post_id).to_string();
    let inbox = |n: &str| format!("https://{n}.example/inbox");
    let content = [inbox("fresh"), inbox("retried"), inbox("later")];
    let create = queue(&db, &urls, "Create", &alice, &note, &content).await;
    let start = bridge::db::now_millis();
    // Queued in this order (ids ascending), due at different times: a retry that fell due
    // long ago, a fresh row due just now, one not due for a minute.
    let due_at = [
        (inbox("fresh"), start - 1_000),
        (inbox("retried"), start - 5_000),
        (inbox("later"), start + 60_000),
    ];
    db.write(move |c| {
        for (inbox, at) in &due_at {
            diesel::update(
                deliveries_table::table
                    .filter(deliveries_table::activity_id.eq(create.0))
                    .filter(deliveries_table::inbox.eq(inbox)),
            )
            .set(deliveries_table::next_attempt_at.eq(at))
            .execute(c)?;
        }
        Ok(())
    })
    .await
    .expect("due times set");
    // Queued last, due last among the due rows, but a removal.
    let removal = [inbox("removal")];
    queue(&db, &urls, "Delete", &alice, &note, &removal).await;

    let claimed = db
        .write(move |c| {
            let hosts = HashMap::new();
            let room = deliveries::HostRoom {
                default: 10,
                hosts: &hosts,
            };
            deliveries::claim_due(c, "order", start + 10, start + 60_000, 10, &room)
        })
        .await
        .expect("claimed");
    let order: Vec<&str> = claimed.iter().map(|d| d.inbox.as_str()).collect();
    assert_eq!(
        order,
        [
            "https://removal.example/inbox",
            "https://retried.example/inbox",
            "https://fresh.example/inbox",
        ],
        "removals first, then the longest due; a row not yet due is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_lease_on_a_finished_delivery() {
    // The outcome writer finds a row by id and lease alone; that is only safe while no
    // finished row can hold a lease.
    let Some(test_db) = TestDatabase::new(Backend::Postgres) else {
        return;
    };
    let settings = settings(&test_db, &[]);
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let note = urls.note(&post.platform_post_id).to_string();
    let activity = queue(
        &db,
        &urls,
        "Create",
        &alice,
        &note,
        &["https://one.example/inbox".to_owned()],
    )
    .await;
    let refused = db
        .write(move |c| {
            Ok(diesel::update(
                deliveries_table::table.filter(deliveries_table::activity_id.eq(activity.0)),
            )
            .set((
                deliveries_table::state.eq("delivered"),
                deliveries_table::lease_owner.eq("someone"),
                deliveries_table::lease_until.eq(1_i64),
            ))
            .execute(c)?)
        })
        .await;
    assert!(refused.is_err(), "a delivered row with a lease was stored");
    let rows = delivery_rows(&db, activity).await;
    assert_eq!(rows[0].1, "pending", "the refused update changed nothing");
}

on_both_backends!(
    a_host_that_takes_every_request_is_given_more_at_once,
    adaptive_host_limit_body
);
async fn adaptive_host_limit_body(test_db: TestDatabase) {
    let settings = settings(
        &test_db,
        &[
            ("FEDIBRIDGE__DELIVERY__CONCURRENCY", "64"),
            ("FEDIBRIDGE__DELIVERY__PER_HOST_CONCURRENCY", "2"),
        ],
    );
    let urls = Urls::new(&settings.federation).expect("urls");
    let db = database(&settings).await;
    let (alice, _) = sharing_user(&db, "alice").await;
    let post = federated_post(&db, &alice, "p1").await;
    let big = FakeInbox::start().await;
    big.answer_all(Reply::Slow(Duration::from_millis(40)));
    // Many followers on one host, each with an inbox of its own.
    let inboxes: Vec<String> = (0..300)
        .map(|n| big.url(&format!("/users/{n}/inbox")))
        .collect();
    let activity = queue(
        &db,
        &urls,
        "Create",
        &alice,
        urls.note(&post.platform_post_id).as_str(),
        &inboxes,
    )
    .await;
    let bridge = Bridge::start(settings, &[Role::Delivery]).await;
    settled(&db, activity, Duration::from_secs(30)).await;
    assert_eq!(big.received().len(), 300, "one request per inbox");
    let most = big.most_in_flight();
    assert!(
        most > 2,
        "a host answering every request while more waited stayed at its starting limit"
    );
    assert!(
        most <= 8,
        "{most} at once: past the ceiling of four times the starting limit"
    );
    bridge.stop().await;
    big.stop().await;
}
