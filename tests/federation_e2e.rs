//! The "done when", end to end through public surfaces only: the platform speaks
//! events, an independent ActivityPub server (Lemmy's `activitypub_federation` crate, in
//! tests/common/peer) speaks ActivityPub, and every request between them is signed and
//! verified by the receiving side.

use std::time::Duration;

use bridge::db::outbox;
use integration_tests::{
    Backend, TestApp, TestDatabase, events,
    peer::{ActivityKind, FollowState, RemotePeer},
    spawn_on_localhost,
};
use serde_json::Value;
use url::Url;

const WAIT: Duration = Duration::from_secs(20);

async fn platform_messages(app: &TestApp) -> Vec<String> {
    app.db
        .run(|c| {
            Ok(outbox::after(c, 0, 1000)?
                .into_iter()
                .map(|m| m.message_type)
                .collect())
        })
        .await
        .expect("outbox")
}

async fn send(app: &TestApp, event: &Value) {
    let response = app.send_event(event).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
}

fn object_id(activity: &Value) -> Option<String> {
    match &activity["object"] {
        Value::String(id) => Some(id.clone()),
        object => object["id"].as_str().map(str::to_owned),
    }
}

async fn remote_server_lifecycle(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let (app, base) = spawn_on_localhost(&db).await;
    let domain = base.trim_start_matches("http://").to_owned();
    send(&app, &events::eligible_user("e1", "u1", "ada")).await;
    send(&app, &events::sharing_on("e2", "u1")).await;

    // The remote server finds the user by WebFinger and follows; our Accept reaches it,
    // signed, through the delivery engine.
    let peer = RemotePeer::start("bob").await;
    let actor = peer
        .resolve(&format!("ada@{domain}"))
        .await
        .expect("WebFinger + actor");
    assert_eq!(actor.preferred_username, "ada");
    let follow = peer
        .follow(&actor.id)
        .await
        .expect("follow accepted by our inbox");
    let deadline = tokio::time::Instant::now() + WAIT;
    while peer.follow_state(&follow) != Some(FollowState::Accepted) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Accept reached the peer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A public post reaches it as a Create; an edit as an Update; then the like and reply
    // come back to the platform; the deletion reaches it as a Delete.
    let note = format!("{base}/posts/p1");
    send(
        &app,
        &events::post(
            "e3",
            "post.created",
            "u1",
            "p1",
            "hello fediverse",
            "public",
        ),
    )
    .await;
    let create = peer
        .wait_for(
            |a| {
                a.kind == ActivityKind::Create
                    && object_id(&a.json).as_deref() == Some(note.as_str())
            },
            WAIT,
        )
        .await
        .expect("Create delivered and verified");
    assert!(
        create.json["object"]["content"]
            .as_str()
            .expect("content")
            .contains("hello fediverse")
    );

    send(
        &app,
        &events::post("e4", "post.updated", "u1", "p1", "hello again", "public"),
    )
    .await;
    let update = peer
        .wait_for(
            |a| {
                a.kind == ActivityKind::Update
                    && object_id(&a.json).as_deref() == Some(note.as_str())
            },
            WAIT,
        )
        .await
        .expect("Update delivered and verified");
    assert!(
        update.json["object"]["content"]
            .as_str()
            .expect("content")
            .contains("hello again")
    );

    let note_url = Url::parse(&note).expect("note URL");
    peer.like(&note_url, &actor.id)
        .await
        .expect("like accepted");
    peer.reply(&note_url, &actor.id, "<p>nice <script>x()</script></p>")
        .await
        .expect("reply accepted");
    let types = platform_messages(&app).await;
    for expected in ["follower.added", "like.added", "reply.received"] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing from {types:?}"
        );
    }

    send(&app, &events::post_deleted("e5", "u1", "p1")).await;
    peer.wait_for(
        |a| a.kind == ActivityKind::Delete && object_id(&a.json).as_deref() == Some(note.as_str()),
        WAIT,
    )
    .await
    .expect("Delete delivered and verified");

    peer.unfollow(&actor.id, &follow)
        .await
        .expect("unfollow accepted");
    assert!(
        platform_messages(&app)
            .await
            .iter()
            .any(|t| t == "follower.removed")
    );

    // Nothing the bridge sent was refused by the peer's verification.
    assert_eq!(peer.rejected_count(), 0, "{:?}", peer.rejections());
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_remote_server_follows_receives_interacts_and_unfollows_on_sqlite() {
    remote_server_lifecycle(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_remote_server_follows_receives_interacts_and_unfollows_on_postgres() {
    remote_server_lifecycle(Backend::Postgres).await;
}
