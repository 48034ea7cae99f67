//! The inbox against an independent ActivityPub implementation (the activitypub_federation
//! peer) and against forged, replayed, oversized and compressed requests.
//!
//! The bridge runs as `localhost:PORT` because the peer only talks to DNS host names.

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use bridge::{
    db::{
        AnyConnection, Database, blocks, keys, now_millis,
        posts::{self, FederationState, InteractionPolicy, PostInput, Visibility},
        schema::{
            activities, deliveries, follows, inbound_activities, platform_outbox, remote_actors,
            remote_interactions,
        },
        users::{self, ProfileInput, User},
    },
    federation::{AddressPolicy, ClientConfig, FederationClient, SigningKey},
    opt_in::SharingState,
};
use diesel::prelude::*;
use integration_tests::{
    Backend, TestApp, TestDatabase,
    peer::{ActivityKind, FollowState, RemotePeer, Tamper},
    remote::{FakeRemote, post_signed, spawn_localhost_bridge},
    test_settings,
};
use serde_json::{Value, json};
use url::Url;

const WAIT: Duration = Duration::from_secs(10);

/// A bridge on `http://localhost:PORT` with one user sharing `on` and one federated post.
struct Bridge {
    app: TestApp,
    db: Database,
    base: Url,
    user: User,
    post_id: String,
    database: TestDatabase,
}

impl Bridge {
    async fn start(backend: Backend, extra: &[(&str, &str)]) -> Option<Bridge> {
        let database = TestDatabase::new(backend)?;
        let (app, db, base) = spawn_localhost_bridge(&database, extra).await;
        let (user, post_id) = db
            .write(|c| {
                let now = now_millis();
                let (user, _) = users::upsert_profile(
                    c,
                    &ProfileInput {
                        platform_user_id: "u1".into(),
                        username: "alice".into(),
                        display_name: Some("Alice".into()),
                        bio: None,
                        avatar_url: None,
                        header_url: None,
                        profile_url: None,
                        fields: Vec::new(),
                        language: None,
                        is_public: true,
                        is_adult: true,
                        is_suspended: false,
                        account_created_at: Some(now - 86_400_000 * 365),
                    },
                    now,
                )?;
                keys::ensure(c, Some(user.id), now)?;
                users::set_sharing_state(c, user.id, SharingState::On, "[]", now)?;
                let (post, _) = posts::upsert(c, user.id, &post_input("p1"), now)?;
                posts::set_federation_state(c, post.id, FederationState::Federated, now)?;
                let user = users::find(c, user.id)?.expect("user");
                Ok((user, "p1".to_owned()))
            })
            .await
            .expect("fixtures");
        Some(Bridge {
            app,
            db,
            base,
            user,
            post_id,
            database,
        })
    }

    fn actor(&self) -> Url {
        self.base.join("/users/u1").expect("url")
    }

    fn note(&self) -> Url {
        self.base
            .join(&format!("/posts/{}", self.post_id))
            .expect("url")
    }

    fn shared_inbox(&self) -> Url {
        self.base.join("/inbox").expect("url")
    }

    fn handle(&self) -> String {
        format!("alice@{}", self.base.authority())
    }

    async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> QueryResult<T> + Send + 'static,
    ) -> T {
        self.db
            .run(move |c| Ok(f(c)?))
            .await
            .expect("query succeeds")
    }

    /// Message types in the platform outbox, oldest first.
    async fn messages(&self) -> Vec<(String, Value)> {
        let rows: Vec<(String, String)> = self
            .query(|c| {
                platform_outbox::table
                    .order(platform_outbox::id.asc())
                    .select((platform_outbox::message_type, platform_outbox::payload))
                    .load(c)
            })
            .await;
        rows.into_iter()
            .map(|(t, p)| (t, serde_json::from_str(&p).expect("JSON payload")))
            .collect()
    }

    async fn message_types(&self) -> Vec<String> {
        self.messages().await.into_iter().map(|(t, _)| t).collect()
    }

    /// (follows, outbox messages, inbound activities): what any effect leaves behind.
    async fn traces(&self) -> (i64, i64, i64) {
        self.query(|c| {
            Ok((
                follows::table.count().get_result(c)?,
                platform_outbox::table.count().get_result(c)?,
                inbound_activities::table.count().get_result(c)?,
            ))
        })
        .await
    }

    async fn signing_key(&self) -> SigningKey {
        let id = self.user.id;
        let key = self
            .db
            .run(move |c| keys::active(c, Some(id)))
            .await
            .expect("query")
            .expect("user key");
        let key_id = Url::parse(&format!("{}#main-key", self.actor())).expect("key id");
        SigningKey::from_pem(key_id, &key.private_key_pem).expect("signing key")
    }
}

fn post_input(id: &str) -> PostInput {
    PostInput {
        platform_post_id: id.into(),
        text: "hello fediverse".into(),
        visibility: Visibility::Public,
        age_restricted: false,
        reply_to_platform_post_id: None,
        reply_to_url: None,
        quote_of_platform_post_id: None,
        quote_of_url: None,
        media: Vec::new(),
        mentions: Vec::new(),
        hashtags: Vec::new(),
        content_warning: None,
        sensitive: false,
        language: None,
        reply_policy: InteractionPolicy::Everyone,
        quote_policy: InteractionPolicy::Everyone,
        via_api: false,
        published_at: now_millis(),
        edited_at: None,
    }
}

fn client() -> FederationClient {
    let base = Url::parse("http://localhost/").expect("url");
    FederationClient::new(ClientConfig::new(
        &base,
        AddressPolicy {
            allow_private: true,
        },
    ))
    .expect("client")
}

async fn interop(backend: Backend) {
    let Some(bridge) = Bridge::start(backend, &[]).await else {
        return;
    };
    let peer = RemotePeer::start("bob").await;

    let view = peer
        .resolve(&bridge.handle())
        .await
        .expect("the peer resolves our user by WebFinger");
    assert_eq!(view.id, bridge.actor());

    // Follow → stored, accepted, the platform told, an Accept queued to the follower.
    let follow_id = peer.follow(&bridge.actor()).await.expect("Follow accepted");
    let states: Vec<String> = bridge
        .query(|c| follows::table.select(follows::state).load(c))
        .await;
    assert_eq!(states, vec!["accepted".to_owned()]);
    let messages = bridge.messages().await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].0, "follower.added");
    assert_eq!(messages[0].1["data"]["pending"], json!(false));
    assert_eq!(
        messages[0].1["data"]["follower"]["actor_id"],
        json!(peer.actor_id())
    );
    assert!(
        peer.actor_fetches() > 0,
        "the bridge fetched the peer's key"
    );

    let (payload, inboxes): (String, Vec<String>) = bridge
        .query(|c| {
            let (id, payload): (i64, String) = activities::table
                .filter(activities::kind.eq("Accept"))
                .select((activities::id, activities::payload))
                .first(c)?;
            let inboxes = deliveries::table
                .filter(deliveries::activity_id.eq(id))
                .select(deliveries::inbox)
                .load(c)?;
            Ok((payload, inboxes))
        })
        .await;
    assert_eq!(inboxes, vec![peer.inbox().to_string()]);
    let accept: Value = serde_json::from_str(&payload).expect("Accept JSON");
    assert_eq!(accept["object"]["id"], json!(follow_id));
    // No delivery worker in this build: send the stored Accept as it would, signed by the
    // user, and let the peer judge it.
    let outcome = client()
        .post_activity(&peer.inbox(), payload.into(), &bridge.signing_key().await)
        .await
        .expect("Accept delivered");
    assert!(outcome.is_success(), "{outcome:?} {:?}", peer.rejections());
    peer.wait_for(|a| a.kind == ActivityKind::Accept, WAIT)
        .await
        .expect("the peer verified our Accept");
    assert_eq!(peer.follow_state(&follow_id), Some(FollowState::Accepted));

    // Like and unlike.
    let like_id = peer
        .like(&bridge.note(), &bridge.actor())
        .await
        .expect("Like accepted");
    assert_eq!(
        bridge.message_types().await,
        ["follower.added", "like.added"]
    );
    let like = &bridge.messages().await[1].1["data"];
    assert_eq!(like["post_id"], json!("p1"));
    assert_eq!(like["user_id"], json!("u1"));

    // Reply with hostile markup → sanitized HTML and plain text.
    let reply_id = peer
        .reply(
            &bridge.note(),
            &bridge.actor(),
            r#"<b>nice</b> <script>alert(1)</script><a href="javascript:x()">link</a>"#,
        )
        .await
        .expect("reply accepted");
    let messages = bridge.messages().await;
    let (kind, reply) = messages.last().expect("a message");
    assert_eq!(kind, "reply.received");
    let reply = &reply["data"];
    assert_eq!(reply["remote_object_id"], json!(reply_id));
    assert_eq!(reply["post_id"], json!("p1"));
    let html = reply["content_html"].as_str().expect("html");
    assert!(html.contains("<b>nice</b>"), "{html}");
    assert!(
        !html.contains("script") && !html.contains("javascript"),
        "{html}"
    );
    let text = reply["content_text"].as_str().expect("text");
    assert!(text.contains("nice") && !text.contains('<'), "{text}");

    // Edit and delete of the reply reach the platform too. The peer sends those to its
    // followers only, so they are delivered here through its signing explicitly.
    let edited = json!({
        "id": format!("{reply_id}#updates/1"),
        "type": "Update",
        "actor": peer.actor_id(),
        "object": {
            "id": reply_id,
            "type": "Note",
            "attributedTo": peer.actor_id(),
            "inReplyTo": bridge.note(),
            "content": "<p>edited <i>reply</i></p>",
            "to": ["https://www.w3.org/ns/activitystreams#Public"]
        }
    });
    let deleted = json!({
        "id": format!("{reply_id}#delete"),
        "type": "Delete",
        "actor": peer.actor_id(),
        "object": {"id": reply_id, "type": "Tombstone"}
    });
    for activity in [edited, deleted] {
        let status = peer
            .deliver_json(&bridge.shared_inbox(), activity)
            .await
            .expect("delivered");
        assert_eq!(status, 202);
    }
    let messages = bridge.messages().await;
    let updated = &messages[messages.len() - 2].1["data"];
    assert_eq!(updated["content_text"], json!("edited reply"));

    peer.unlike(&like_id, &bridge.note(), &bridge.actor())
        .await
        .expect("Undo(Like) accepted");
    peer.unfollow(&bridge.actor(), &follow_id)
        .await
        .expect("Undo(Follow) accepted");
    assert_eq!(
        bridge.message_types().await,
        [
            "follower.added",
            "like.added",
            "reply.received",
            "reply.updated",
            "reply.deleted",
            "like.removed",
            "follower.removed"
        ]
    );
    let remaining: i64 = bridge.query(|c| follows::table.count().get_result(c)).await;
    assert_eq!(remaining, 0);

    // A replayed activity id is answered 202 and changes nothing.
    let before = bridge.traces().await;
    let status = peer
        .deliver_json(
            &bridge.shared_inbox(),
            json!({
                "id": like_id, "type": "Like", "actor": peer.actor_id(), "object": bridge.note()
            }),
        )
        .await
        .expect("delivered");
    assert_eq!(status, 202);
    assert_eq!(bridge.traces().await, before);

    let metrics = bridge.app.get("/metrics").await.text().await.expect("body");
    assert!(
        metrics.contains(r#"fedibridge_inbox_activities_total{outcome="duplicate"} 1"#),
        "{metrics}"
    );
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_follows_likes_replies_and_undoes_on_sqlite() {
    interop(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_follows_likes_replies_and_undoes_on_postgres() {
    interop(Backend::Postgres).await;
}

async fn refusals(backend: Backend) {
    let Some(bridge) =
        Bridge::start(backend, &[("FEDIBRIDGE__SERVER__MAX_BODY_BYTES", "65536")]).await
    else {
        return;
    };
    let peer = RemotePeer::start("bob").await;
    let remote = FakeRemote::start(&["eve", "mallory"], &["gone"]).await;
    let inbox = bridge.shared_inbox();
    let user_inbox = bridge.base.join("/users/u1/inbox").expect("url");
    let follow = |actor: &Url, id: &str| {
        json!({
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": actor.join(id).expect("id"),
            "type": "Follow",
            "actor": actor,
            "object": bridge.actor()
        })
    };
    let now = SystemTime::now();

    // Unsigned.
    let status = peer
        .deliver_unsigned(&user_inbox, &follow(&peer.actor_id(), "/f1"))
        .await
        .expect("sent");
    assert_eq!(status, 401, "unsigned");

    // Body changed after signing: Digest mismatch, then a matching Digest but a signature
    // over the old one.
    let signed = follow(&peer.actor_id(), "/f2");
    let sent = follow(&peer.actor_id(), "/f3");
    for tamper in [Tamper::Body, Tamper::BodyAndDigest] {
        let status = peer
            .deliver_tampered(&user_inbox, &signed, &sent, tamper)
            .await
            .expect("sent");
        assert_eq!(status, 401, "{tamper:?}");
    }

    // Signed two hours ago.
    let eve = remote.actor("eve");
    let old = now - Duration::from_secs(2 * 3600);
    let status = post_signed(
        &inbox,
        &inbox,
        &follow(&eve, "/f4"),
        &remote.key("eve"),
        old,
    )
    .await;
    assert_eq!(status, 401, "old date");

    // Signed by eve's key, claiming to be mallory.
    let mallory = remote.actor("mallory");
    let status = post_signed(
        &inbox,
        &inbox,
        &follow(&mallory, "/f5"),
        &remote.key("eve"),
        now,
    )
    .await;
    assert_eq!(status, 401, "key of another actor");

    // Signed by eve's key, claiming to be the peer's actor (another origin): refused
    // before anything is fetched.
    let fetches = peer.actor_fetches();
    let status = post_signed(
        &inbox,
        &inbox,
        &follow(&peer.actor_id(), "/f6"),
        &remote.key("eve"),
        now,
    )
    .await;
    assert_eq!(status, 401, "key on another origin");
    assert_eq!(peer.actor_fetches(), fetches);

    // Ids on our own domain.
    let mut local = follow(&eve, "/f7");
    local["id"] = json!(bridge.base.join("/activities/forged").expect("url"));
    let status = post_signed(&inbox, &inbox, &local, &remote.key("eve"), now).await;
    assert!(matches!(status, 400 | 401), "local id: {status}");

    // Signed for another Host.
    let elsewhere = Url::parse("http://elsewhere.example/inbox").expect("url");
    let status = post_signed(
        &inbox,
        &elsewhere,
        &follow(&eve, "/f8"),
        &remote.key("eve"),
        now,
    )
    .await;
    assert_eq!(status, 401, "wrong host");

    // Too large, compressed, not JSON.
    let client = reqwest::Client::new();
    let big = format!(r#"{{"padding":"{}"}}"#, "x".repeat(70_000));
    let status = client
        .post(inbox.as_str())
        .header("content-type", "application/activity+json")
        .body(big)
        .send()
        .await
        .expect("sent")
        .status();
    assert_eq!(status.as_u16(), 413, "too large");
    let status = client
        .post(inbox.as_str())
        .header("content-type", "application/activity+json")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0x00])
        .send()
        .await
        .expect("sent")
        .status();
    assert_eq!(status.as_u16(), 415, "compressed");
    let status = client
        .post(inbox.as_str())
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("sent")
        .status();
    assert_eq!(status.as_u16(), 415, "text/plain");

    // A deleted actor's own Delete, whose key answers 410: 202, nothing done.
    let gone = remote.actor("gone");
    let delete = json!({
        "id": format!("{gone}#delete"), "type": "Delete", "actor": gone, "object": gone
    });
    let status = post_signed(&inbox, &inbox, &delete, &remote.key("gone"), now).await;
    assert_eq!(status, 202, "Delete of a gone actor");

    // None of the above left anything behind.
    assert_eq!(bridge.traces().await, (0, 0, 0));

    // A valid signature from the fake remote is accepted, showing the refusals above were
    // for their own reasons.
    let status = post_signed(
        &inbox,
        &inbox,
        &follow(&eve, "/f9"),
        &remote.key("eve"),
        now,
    )
    .await;
    assert_eq!(status, 202, "a well-signed Follow");
    assert_eq!(bridge.traces().await, (1, 1, 1));

    let metrics = bridge.app.get("/metrics").await.text().await.expect("body");
    for needle in [
        r#"outcome="rejected_signature"} 7"#,
        r#"outcome="accepted"} 1"#,
        r#"outcome="ignored"} 1"#,
    ] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_unbounded_requests_leave_no_trace_on_sqlite() {
    refusals(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_unbounded_requests_leave_no_trace_on_postgres() {
    refusals(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_servers_and_accounts_are_refused() {
    let Some(bridge) = Bridge::start(Backend::Sqlite, &[]).await else {
        return;
    };
    let remote = FakeRemote::start(&["eve"], &[]).await;
    let peer = RemotePeer::start("bob").await;
    let inbox = bridge.shared_inbox();
    let now = SystemTime::now();
    let eve = remote.actor("eve");

    // The user blocks the peer's server, spelled as a person might: its Follow is answered
    // with a Reject, since the block is stored in the form hosts are matched in.
    let user = bridge.user.id;
    let peer_domain = bridge::moderation::BlockDomain::parse("LocalHost.").expect("a domain");
    assert!(peer.domain().starts_with("localhost:"), "{}", peer.domain());
    bridge
        .db
        .write(move |c| {
            bridge::db::user_blocks::add(
                c,
                user,
                &bridge::db::user_blocks::BlockTarget::Domain(peer_domain),
                now_millis(),
            )
        })
        .await
        .expect("user block");
    // Both servers are on localhost, so the user block covers eve's server too.
    let follow = json!({
        "id": format!("{eve}#follow"), "type": "Follow", "actor": eve, "object": bridge.actor()
    });
    let status = post_signed(&inbox, &inbox, &follow, &remote.key("eve"), now).await;
    assert_eq!(status, 202);
    let kinds: Vec<String> = bridge
        .query(|c| activities::table.select(activities::kind).load(c))
        .await;
    assert_eq!(kinds, vec!["Reject".to_owned()]);
    let (follows, messages, _) = bridge.traces().await;
    assert_eq!((follows, messages), (0, 0));

    // The administrator blocks the server: 403 before any fetch.
    bridge
        .db
        .write(|c| {
            blocks::block_instance(
                c,
                "localhost",
                blocks::InstanceBlockSeverity::Reject,
                None,
                now_millis(),
            )
        })
        .await
        .expect("instance block");
    let fetches = peer.actor_fetches();
    let like = json!({
        "id": format!("{}#like", peer.actor_id()),
        "type": "Like",
        "actor": peer.actor_id(),
        "object": bridge.note()
    });
    let status = peer.deliver_json(&inbox, like).await.expect("delivered");
    assert_eq!(status, 403);
    assert_eq!(
        peer.actor_fetches(),
        fetches,
        "nothing fetched for a blocked server"
    );
    bridge.app.stop().await.expect("stops");
}

/// One like per actor and post is in effect at a time, even when several Likes with
/// different ids arrive at once (a unique index, not a read before the insert); once it is
/// undone, a new Like counts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_likes_of_one_post_by_one_actor_count_once_on_postgres() {
    let Some(bridge) = Bridge::start(
        Backend::Postgres,
        &[
            ("FEDIBRIDGE__DATABASE__POOL_SIZE", "8"),
            ("FEDIBRIDGE__SERVER__WORKERS", "4"),
        ],
    )
    .await
    else {
        return;
    };
    let remote = FakeRemote::start(&["eve"], &[]).await;
    let inbox = bridge.shared_inbox();
    let eve = remote.actor("eve");
    // Known first, so the likes below reach their transactions together.
    let first = json!({
        "id": format!("{eve}#like-0"), "type": "Like", "actor": eve, "object": bridge.note()
    });
    assert_eq!(remote.send(&inbox, "eve", first).await, 202);
    let undo = json!({
        "id": format!("{eve}#undo-0"), "type": "Undo", "actor": eve,
        "object": format!("{eve}#like-0")
    });
    assert_eq!(remote.send(&inbox, "eve", undo).await, 202);

    let likes = (1..=12).map(|n| {
        let like = json!({
            "id": format!("{eve}#like-{n}"), "type": "Like", "actor": eve, "object": bridge.note()
        });
        let (remote, inbox) = (&remote, &inbox);
        async move { remote.send(inbox, "eve", like).await }
    });
    let statuses = futures_util::future::join_all(likes).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    assert_eq!(
        bridge.message_types().await,
        ["like.added", "like.removed", "like.added"],
        "the like counts again after its Undo, and once only"
    );
    let active: i64 = bridge
        .query(|c| {
            remote_interactions::table
                .filter(remote_interactions::kind.eq("like"))
                .filter(remote_interactions::undone_at.is_null())
                .count()
                .get_result(c)
        })
        .await;
    assert_eq!(active, 1);
    bridge.app.stop().await.expect("stops");
}

/// A user's block of one account (not its server) stops that account's likes, replies and
/// follows, and nobody else's (the block is read in the same query as the post or user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_block_of_an_account_stops_its_interactions_on_postgres() {
    let Some(bridge) = Bridge::start(Backend::Postgres, &[]).await else {
        return;
    };
    let remote = FakeRemote::start(&["eve", "frank"], &[]).await;
    let inbox = bridge.shared_inbox();
    let (eve, frank) = (remote.actor("eve"), remote.actor("frank"));
    let user = bridge.user.id;
    let blocked = eve.to_string();
    bridge
        .db
        .write(move |c| {
            bridge::db::user_blocks::add(
                c,
                user,
                &bridge::db::user_blocks::BlockTarget::Actor(blocked),
                now_millis(),
            )
        })
        .await
        .expect("user block");
    let public = "https://www.w3.org/ns/activitystreams#Public";
    for (name, actor) in [("eve", &eve), ("frank", &frank)] {
        let activities = [
            json!({
                "id": format!("{actor}#like"), "type": "Like", "actor": actor,
                "object": bridge.note()
            }),
            json!({
                "id": format!("{actor}/notes/1/activity"), "type": "Create", "actor": actor,
                "to": [public], "cc": [bridge.actor()],
                "object": {
                    "id": format!("{actor}/notes/1"), "type": "Note", "attributedTo": actor,
                    "inReplyTo": bridge.note(), "content": "<p>hello</p>", "to": [public],
                    "published": "2026-01-01T00:00:00Z"
                }
            }),
            json!({
                "id": format!("{actor}#follow"), "type": "Follow", "actor": actor,
                "object": bridge.actor()
            }),
        ];
        for activity in activities {
            assert_eq!(
                remote.send(&inbox, name, activity.clone()).await,
                202,
                "{activity}"
            );
        }
    }
    let mut types = bridge.message_types().await;
    types.sort();
    assert_eq!(
        types,
        ["follower.added", "like.added", "reply.received"],
        "only frank's like, reply and follow reach the platform"
    );
    let answers: Vec<String> = bridge
        .query(|c| {
            activities::table
                .order(activities::id.asc())
                .select(activities::kind)
                .load(c)
        })
        .await;
    assert_eq!(
        answers,
        ["Reject", "Accept"],
        "eve's follow is rejected, frank's accepted"
    );
    let (follows, _, _) = bridge.traces().await;
    assert_eq!(follows, 1);
    bridge.app.stop().await.expect("stops");
}

/// Imports `list` as the operator would (`fedibridge blocks import`); returns the report.
async fn import_blocklist(
    bridge: &Bridge,
    list: &str,
) -> bridge::moderation::domain_blocks::ImportReport {
    let parsed = bridge::moderation::blocklist::parse(list.as_bytes());
    let settings = test_settings(&bridge.database, &[]);
    let urls = bridge.app.urls.clone();
    bridge
        .db
        .write(move |c| {
            let cx = bridge::opt_in::lifecycle::Context {
                rules: &settings.sharing,
                urls: &urls,
                initiator: bridge::opt_in::Initiator::Operator,
                now: now_millis(),
            };
            bridge::moderation::domain_blocks::import(c, &parsed, false, cx)
        })
        .await
        .expect("import")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_blocklists_refuse_follows_or_the_whole_server() {
    let Some(bridge) = Bridge::start(Backend::Sqlite, &[]).await else {
        return;
    };
    let peer = RemotePeer::start("bob").await;
    let remote = FakeRemote::start(&["eve"], &[]).await;
    let inbox = bridge.shared_inbox();
    peer.follow(&bridge.actor()).await.expect("Follow accepted");
    let followers = || async {
        bridge
            .query(|c| follows::table.count().get_result::<i64>(c))
            .await
    };
    assert_eq!(followers().await, 1);

    // Mastodon's `silence` is `follows_only`: a new Follow is answered with a Reject, the
    // existing follower stays, and other activities are accepted.
    let report = import_blocklist(
        &bridge,
        "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n\
         localhost,silence,false,false,Too loud,false\n",
    )
    .await;
    assert_eq!((report.added, report.invalid.len()), (1, 0));
    let eve = remote.actor("eve");
    let follow = json!({
        "id": format!("{eve}#follow"), "type": "Follow", "actor": eve, "object": bridge.actor()
    });
    let status = post_signed(
        &inbox,
        &inbox,
        &follow,
        &remote.key("eve"),
        SystemTime::now(),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(followers().await, 1, "eve's follow is refused");
    let answers: Vec<String> = bridge
        .query(|c| {
            activities::table
                .order(activities::id.asc())
                .select(activities::kind)
                .load(c)
        })
        .await;
    assert_eq!(answers, ["Accept", "Reject"]);
    let like = |n: u32| {
        json!({
            "id": format!("{}#likes/{n}", peer.actor_id()),
            "type": "Like",
            "actor": peer.actor_id(),
            "object": bridge.note()
        })
    };
    let status = peer.deliver_json(&inbox, like(1)).await.expect("delivered");
    assert_eq!(status, 202, "{:?}", peer.rejections());
    assert_eq!(
        bridge.message_types().await,
        ["follower.added", "like.added"]
    );

    // A plain list line means `reject`: it makes the block stricter, severs the follow
    // (Reject(Follow) to the follower, follower.removed to the platform) and the inbox
    // answers 403 before fetching anything.
    let report = import_blocklist(&bridge, "# shared list\nLOCALHOST.\n").await;
    assert_eq!((report.updated, report.followers_removed), (1, 1));
    assert_eq!(followers().await, 0);
    assert_eq!(
        bridge.message_types().await,
        ["follower.added", "like.added", "follower.removed"]
    );
    let fetches = peer.actor_fetches();
    let status = peer.deliver_json(&inbox, like(2)).await.expect("delivered");
    assert_eq!(status, 403);
    let status = peer
        .deliver_json(
            &inbox,
            json!({
                "id": format!("{}#follow/2", peer.actor_id()),
                "type": "Follow",
                "actor": peer.actor_id(),
                "object": bridge.actor()
            }),
        )
        .await
        .expect("delivered");
    assert_eq!(status, 403);
    assert_eq!(peer.actor_fetches(), fetches);
    assert_eq!(
        bridge.message_types().await.len(),
        3,
        "nothing more reached the platform"
    );
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_refetched_once_and_bad_keys_are_remembered() {
    let Some(bridge) = Bridge::start(Backend::Sqlite, &[]).await else {
        return;
    };
    let remote = FakeRemote::start(&["eve"], &[]).await;
    let inbox = bridge.shared_inbox();
    let eve = remote.actor("eve");

    let follow = json!({
        "id": format!("{eve}#follow"), "type": "Follow", "actor": eve, "object": bridge.actor()
    });
    assert_eq!(remote.send(&inbox, "eve", follow).await, 202);
    assert_eq!(remote.fetches(), 1);

    // Eve rotates her key: the cached key fails, the bridge refetches once and accepts.
    remote.put_actor("eve", json!({}));
    let like = json!({
        "id": format!("{eve}#like"), "type": "Like", "actor": eve, "object": bridge.note()
    });
    assert_eq!(remote.send(&inbox, "eve", like).await, 202);
    assert_eq!(remote.fetches(), 2);
    assert_eq!(
        bridge.message_types().await,
        ["follower.added", "like.added"]
    );

    // A key the bridge cannot get (404) is fetched once, not once per request.
    remote.new_key("nobody");
    let nobody = remote.actor("nobody");
    for n in 0..3 {
        let like = json!({
            "id": format!("{nobody}#like{n}"), "type": "Like", "actor": nobody,
            "object": bridge.note()
        });
        assert_eq!(remote.send(&inbox, "nobody", like).await, 401);
    }
    assert_eq!(remote.fetches(), 3);
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_activity_reaches_the_platform() {
    let Some(bridge) = Bridge::start(Backend::Sqlite, &[]).await else {
        return;
    };
    let remote = FakeRemote::start(&["eve", "mallory"], &[]).await;
    let inbox = bridge.shared_inbox();
    let (eve, mallory) = (remote.actor("eve"), remote.actor("mallory"));
    let public = "https://www.w3.org/ns/activitystreams#Public";
    let send = |name: &'static str, activity: Value| {
        let (inbox, remote) = (&inbox, &remote);
        async move {
            let status = remote.send(inbox, name, activity.clone()).await;
            assert_eq!(status, 202, "{activity}");
        }
    };
    let last = |messages: &[(String, Value)]| messages.last().expect("a message").clone();

    for (name, actor) in [("eve", &eve), ("mallory", &mallory)] {
        send(
            name,
            json!({
                "id": format!("{actor}#follow"), "type": "Follow", "actor": actor,
                "object": bridge.actor()
            }),
        )
        .await;
    }

    // Boost, a foreign Undo of it (ignored), and eve's own Undo.
    let announce = format!("{eve}#announce");
    send("eve", json!({
        "id": announce, "type": "Announce", "actor": eve, "object": bridge.note(), "to": [public]
    }))
    .await;
    send(
        "mallory",
        json!({
            "id": format!("{mallory}#undo-eves"), "type": "Undo", "actor": mallory,
            "object": announce
        }),
    )
    .await;
    send(
        "eve",
        json!({
            "id": format!("{eve}#undo-announce"), "type": "Undo", "actor": eve,
            "object": {"id": announce, "type": "Announce", "actor": eve, "object": bridge.note()}
        }),
    )
    .await;
    assert_eq!(
        &bridge.message_types().await[2..],
        ["boost.added", "boost.removed"]
    );

    // A mention and a quote.
    let note = |id: &str, extra: Value| {
        let mut note = json!({
            "id": format!("{eve}/notes/{id}"), "type": "Note", "attributedTo": eve,
            "content": "<p>hey</p>", "to": [public]
        });
        if let (Some(n), Some(e)) = (note.as_object_mut(), extra.as_object()) {
            n.extend(e.clone());
        }
        json!({
            "id": format!("{eve}/notes/{id}/activity"), "type": "Create", "actor": eve,
            "object": note
        })
    };
    send(
        "eve",
        note(
            "1",
            json!({"tag": [{"type": "Mention", "href": bridge.actor()}]}),
        ),
    )
    .await;
    let (kind, data) = last(&bridge.messages().await);
    assert_eq!(kind, "mention.received");
    assert_eq!(data["data"]["post_id"], Value::Null);
    send("eve", note("2", json!({"quoteUrl": bridge.note()}))).await;
    let (kind, data) = last(&bridge.messages().await);
    assert_eq!(kind, "quote.received");
    assert_eq!(data["data"]["post_id"], json!("p1"));
    // Mallory, on the same server, can neither edit nor delete eve's quote: each actor
    // only reaches the interactions it made itself.
    let before = bridge.message_types().await.len();
    let eves = format!("{eve}/notes/2");
    send(
        "mallory",
        json!({
            "id": format!("{mallory}#update-eves"), "type": "Update", "actor": mallory,
            "object": {
                "id": eves, "type": "Note", "attributedTo": mallory,
                "content": "<p>forged</p>", "quoteUrl": bridge.note(), "to": [public]
            }
        }),
    )
    .await;
    send(
        "mallory",
        json!({
            "id": format!("{mallory}#delete-eves"), "type": "Delete", "actor": mallory,
            "object": {"id": eves, "type": "Tombstone"}
        }),
    )
    .await;
    assert_eq!(bridge.message_types().await.len(), before);
    // A Note about someone else's post concerns nobody here.
    let before = bridge.message_types().await.len();
    send(
        "eve",
        note("3", json!({"inReplyTo": "https://elsewhere.example/p/1"})),
    )
    .await;
    assert_eq!(bridge.message_types().await.len(), before);

    // A report of the user and the post.
    send(
        "eve",
        json!({
            "id": format!("{eve}#flag"), "type": "Flag", "actor": eve,
            "object": [bridge.actor(), bridge.note()], "content": "spam <b>here</b>"
        }),
    )
    .await;
    let (kind, data) = last(&bridge.messages().await);
    assert_eq!(kind, "report.received");
    assert_eq!(data["data"]["post_ids"], json!(["p1"]));
    assert_eq!(data["data"]["comment"], json!("spam here"));

    // The actor's own Update refreshes it.
    send(
        "eve",
        json!({
            "id": format!("{eve}#update"), "type": "Update", "actor": eve,
            "object": {
                "id": eve, "type": "Person", "preferredUsername": "eve", "name": "Eve Renamed",
                "inbox": format!("{eve}/inbox")
            }
        }),
    )
    .await;
    let eve_id = eve.to_string();
    let name: Option<String> = bridge
        .query(move |c| {
            remote_actors::table
                .filter(remote_actors::ap_id.eq(eve_id))
                .select(remote_actors::name)
                .first(c)
        })
        .await;
    assert_eq!(name.as_deref(), Some("Eve Renamed"));
    // The Update listed no key: the stored one still verifies, without a refetch.
    let fetches = remote.fetches();
    send(
        "eve",
        json!({
            "id": format!("{eve}#like-again"), "type": "Like", "actor": eve, "object": bridge.note()
        }),
    )
    .await;
    assert_eq!(remote.fetches(), fetches);

    // A Move is recorded only when the target confirms it with alsoKnownAs.
    remote.put_actor("eve2", json!({"alsoKnownAs": [eve]}));
    send(
        "mallory",
        json!({
            "id": format!("{mallory}#move"), "type": "Move", "actor": mallory,
            "object": mallory, "target": remote.actor("eve2")
        }),
    )
    .await;
    send(
        "eve",
        json!({
            "id": format!("{eve}#move"), "type": "Move", "actor": eve,
            "object": eve, "target": remote.actor("eve2")
        }),
    )
    .await;
    let moved: Vec<(String, Option<String>)> = bridge
        .query(|c| {
            remote_actors::table
                .order(remote_actors::ap_id.asc())
                .select((remote_actors::ap_id, remote_actors::moved_to))
                .load(c)
        })
        .await;
    let moved: HashMap<String, Option<String>> = moved.into_iter().collect();
    assert_eq!(moved[eve.as_str()], Some(remote.actor("eve2").to_string()));
    assert_eq!(moved[mallory.as_str()], None);

    // Blocked by eve: she stops following, the user is told.
    let before = bridge.message_types().await.len();
    send(
        "eve",
        json!({
            "id": format!("{eve}#block"), "type": "Block", "actor": eve, "object": bridge.actor()
        }),
    )
    .await;
    assert_eq!(
        &bridge.message_types().await[before..],
        ["follower.removed", "user.blocked_by_remote"]
    );

    // Mallory deletes herself: her follow goes.
    send(
        "mallory",
        json!({
            "id": format!("{mallory}#delete"), "type": "Delete", "actor": mallory, "object": mallory
        }),
    )
    .await;
    assert_eq!(last(&bridge.messages().await).0, "follower.removed");
    let follows_left: i64 = bridge.query(|c| follows::table.count().get_result(c)).await;
    assert_eq!(follows_left, 0);

    // After the user opts out nothing reaches them any more.
    let user = bridge.user.id;
    bridge
        .db
        .write(move |c| {
            users::set_sharing_state(c, user, SharingState::Off, "[]", now_millis())?;
            users::set_opted_out(c, user, now_millis(), now_millis())
        })
        .await
        .expect("opt out");
    let before = bridge.message_types().await.len();
    send(
        "eve",
        json!({
            "id": format!("{eve}#like-after"), "type": "Like", "actor": eve, "object": bridge.note()
        }),
    )
    .await;
    send(
        "eve",
        note(
            "4",
            json!({"tag": [{"type": "Mention", "href": bridge.actor()}]}),
        ),
    )
    .await;
    assert_eq!(bridge.message_types().await.len(), before);
    bridge.app.stop().await.expect("stops");
}

/// A new remote actor's server often delivers several activities at once (to several
/// inboxes, or a burst of likes): each request fetches the unknown key and stores the actor,
/// and each first Follow creates the follow. Storing must be one atomic statement: before it
/// was, two of these requests both inserted and one was answered 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_requests_of_a_new_actor_are_all_accepted_on_postgres() {
    const PARALLEL: usize = 20;
    let Some(bridge) = Bridge::start(
        Backend::Postgres,
        &[
            ("FEDIBRIDGE__DATABASE__POOL_SIZE", "8"),
            ("FEDIBRIDGE__SERVER__WORKERS", "4"),
        ],
    )
    .await
    else {
        return;
    };
    let user = bridge.user.id;
    let notes: Vec<Url> = bridge
        .db
        .write(move |c| {
            let now = now_millis();
            let mut ids = Vec::new();
            for n in 0..PARALLEL {
                let pid = format!("burst{n}");
                let (post, _) = posts::upsert(c, user, &post_input(&pid), now)?;
                posts::set_federation_state(c, post.id, FederationState::Federated, now)?;
                ids.push(pid);
            }
            Ok(ids)
        })
        .await
        .expect("posts")
        .into_iter()
        .map(|pid| bridge.base.join(&format!("/posts/{pid}")).expect("url"))
        .collect();
    let remote = FakeRemote::start(&["eve", "frank"], &[]).await;
    let inbox = bridge.shared_inbox();

    // eve, never seen before: PARALLEL likes of different posts at once.
    let eve = remote.actor("eve");
    let likes = notes.iter().enumerate().map(|(n, note)| {
        let activity = json!({
            "id": format!("{eve}#like-{n}"), "type": "Like", "actor": eve, "object": note
        });
        let (remote, inbox) = (&remote, &inbox);
        async move { remote.send(inbox, "eve", activity).await }
    });
    let statuses = futures_util::future::join_all(likes).await;
    assert!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "every like is accepted: {statuses:?}"
    );

    // frank, never seen before: PARALLEL Follows (new ids, as a retrying server sends) at once.
    let frank = remote.actor("frank");
    let user_inbox = bridge.base.join("/users/u1/inbox").expect("url");
    let followed = bridge.actor();
    let follows_sent = (0..PARALLEL).map(|n| {
        let activity = json!({
            "id": format!("{frank}#follow-{n}"), "type": "Follow", "actor": frank,
            "object": followed
        });
        let (remote, inbox) = (&remote, &user_inbox);
        async move { remote.send(inbox, "frank", activity).await }
    });
    let statuses = futures_util::future::join_all(follows_sent).await;
    assert!(
        statuses.iter().all(|s| (200..300).contains(s)),
        "every follow is accepted: {statuses:?}"
    );

    let (eve_rows, frank_rows, likes, follows, added, accepts) = {
        let (eve, frank) = (eve.to_string(), frank.to_string());
        bridge
            .query(move |c| {
                let rows = |ap_id: String, c: &mut AnyConnection| {
                    remote_actors::table
                        .filter(remote_actors::ap_id.eq(ap_id))
                        .count()
                        .get_result::<i64>(c)
                };
                Ok((
                    rows(eve, c)?,
                    rows(frank, c)?,
                    remote_interactions::table
                        .filter(remote_interactions::kind.eq("like"))
                        .count()
                        .get_result::<i64>(c)?,
                    follows::table.count().get_result::<i64>(c)?,
                    platform_outbox::table
                        .filter(platform_outbox::message_type.eq("follower.added"))
                        .count()
                        .get_result::<i64>(c)?,
                    activities::table
                        .filter(activities::kind.eq("Accept"))
                        .count()
                        .get_result::<i64>(c)?,
                ))
            })
            .await
    };
    assert_eq!((eve_rows, frank_rows), (1, 1), "one row per remote actor");
    assert_eq!(likes, PARALLEL as i64, "each like stored once");
    assert_eq!(follows, 1, "one follow");
    assert_eq!(added, 1, "the platform hears of the new follower once");
    assert_eq!(accepts, PARALLEL as i64, "every Follow is answered");
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_answered_503_never_2xx() {
    let Some(bridge) = Bridge::start(Backend::Postgres, &[]).await else {
        return;
    };
    let remote = FakeRemote::start(&["eve"], &[]).await;
    let eve = remote.actor("eve");
    bridge.database.drop_postgres_now();
    let follow = json!({
        "id": format!("{eve}#follow"), "type": "Follow", "actor": eve, "object": bridge.actor()
    });
    let status = remote.send(&bridge.shared_inbox(), "eve", follow).await;
    assert_eq!(status, 503);
    bridge.app.stop().await.expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_keeps_follows_pending_without_an_accept() {
    let Some(bridge) = Bridge::start(Backend::Sqlite, &[]).await else {
        return;
    };
    let user = bridge.user.id;
    bridge
        .query(move |c| {
            diesel::update(bridge::db::schema::users::table.find(user.0))
                .set(bridge::db::schema::users::manually_approves_followers.eq(true))
                .execute(c)
        })
        .await;
    let remote = FakeRemote::start(&["eve"], &[]).await;
    let eve = remote.actor("eve");
    let follow = json!({
        "id": format!("{eve}#follow"), "type": "Follow", "actor": eve, "object": bridge.actor()
    });
    assert_eq!(
        remote.send(&bridge.shared_inbox(), "eve", follow).await,
        202
    );
    let states: Vec<String> = bridge
        .query(|c| follows::table.select(follows::state).load(c))
        .await;
    assert_eq!(states, ["pending"]);
    let messages = bridge.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1["data"]["pending"], json!(true));
    let answers: i64 = bridge
        .query(|c| activities::table.count().get_result(c))
        .await;
    assert_eq!(answers, 0, "no Accept before the user approves");
    bridge.app.stop().await.expect("stops");
}
