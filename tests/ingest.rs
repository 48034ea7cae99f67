//! The platform contract end to end over HTTP (the embedded default): events become users,
//! sharing states, Notes and activities; nothing leaks; duplicates and bad events are safe.

use bridge::db::{outbox, schema};
use diesel::prelude::*;
use integration_tests::{TestApp, TestDatabase, events, test_settings};
use serde_json::Value;

async fn result_of(app: &TestApp, event: &Value) -> String {
    let response = app.send_event(event).await;
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(status, 200, "{body}");
    body["result"].as_str().expect("result").to_owned()
}

async fn activity_kinds(app: &TestApp) -> Vec<String> {
    app.db
        .run(|c| {
            Ok(schema::activities::table
                .order(schema::activities::id.asc())
                .select(schema::activities::kind)
                .load(c)?)
        })
        .await
        .expect("activities")
}

async fn outbox_types(app: &TestApp) -> Vec<String> {
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

macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                if let Some(db) =
                    integration_tests::TestDatabase::new(integration_tests::Backend::Sqlite)
                {
                    super::$name(db).await;
                }
            }
            #[tokio::test]
            async fn postgres() {
                if let Some(db) =
                    integration_tests::TestDatabase::new(integration_tests::Backend::Postgres)
                {
                    super::$name(db).await;
                }
            }
        }
    };
}

async fn lifecycle_from_events(db: TestDatabase) {
    let app = TestApp::spawn(test_settings(&db, &[])).await;
    let handle = format!(
        "/.well-known/webfinger?resource=acct:ada@{}",
        app.urls.domain()
    );

    assert_eq!(
        result_of(&app, &events::eligible_user("e1", "u1", "ada")).await,
        "applied"
    );
    // Known but not sharing: invisible.
    assert_eq!(app.get(&handle).await.status(), 404);
    assert_eq!(app.ap_get("/users/u1").await.status(), 404);
    // A post of a user who does not share is not even stored.
    assert_eq!(
        result_of(
            &app,
            &events::post("e2", "post.created", "u1", "p0", "before", "public")
        )
        .await,
        "ignored"
    );

    assert_eq!(
        result_of(&app, &events::sharing_on("e3", "u1")).await,
        "applied"
    );
    assert_eq!(app.get(&handle).await.status(), 200);
    let actor: Value = app.ap_get("/users/u1").await.json().await.expect("actor");
    assert_eq!(actor["type"], "Person");
    assert_eq!(actor["preferredUsername"], "ada");
    assert!(
        actor["publicKey"]["publicKeyPem"]
            .as_str()
            .is_some_and(|k| k.contains("BEGIN PUBLIC KEY"))
    );

    // Public post: Create stored, Note served.
    assert_eq!(
        result_of(
            &app,
            &events::post("e4", "post.created", "u1", "p1", "hello #rust", "public")
        )
        .await,
        "applied"
    );
    let note = app.ap_get("/posts/p1").await;
    assert_eq!(note.status(), 200);
    let note: Value = note.json().await.expect("note");
    assert_eq!(note["type"], "Note");
    assert!(note["content"].as_str().expect("content").contains("hello"));
    assert_eq!(
        note["to"][0],
        "https://www.w3.org/ns/activitystreams#Public"
    );

    // Followers-only post: stored, never served, no activity.
    assert_eq!(
        result_of(
            &app,
            &events::post("e5", "post.created", "u1", "p2", "secret", "followers")
        )
        .await,
        "applied"
    );
    assert_eq!(app.ap_get("/posts/p2").await.status(), 404);
    // An edit making it public does not federate it: only new public posts do.
    assert_eq!(
        result_of(
            &app,
            &events::post("e6", "post.updated", "u1", "p2", "secret", "public")
        )
        .await,
        "applied"
    );
    assert_eq!(app.ap_get("/posts/p2").await.status(), 404);

    // Edit of the federated post: Update. Going private: Delete, then 410.
    assert_eq!(
        result_of(
            &app,
            &events::post("e7", "post.updated", "u1", "p1", "hello again", "public")
        )
        .await,
        "applied"
    );
    assert_eq!(
        result_of(
            &app,
            &events::post("e8", "post.updated", "u1", "p1", "now private", "private")
        )
        .await,
        "applied"
    );
    assert_eq!(app.ap_get("/posts/p1").await.status(), 410);
    assert_eq!(
        activity_kinds(&app).await,
        vec!["Create", "Update", "Delete"]
    );

    // Duplicates have no second effect.
    assert_eq!(
        result_of(
            &app,
            &events::post("e4", "post.created", "u1", "p1", "hello #rust", "public")
        )
        .await,
        "duplicate"
    );
    assert_eq!(activity_kinds(&app).await.len(), 3);

    // Turning off: actor and WebFinger gone.
    assert_eq!(
        result_of(&app, &events::sharing_off("e9", "u1")).await,
        "applied"
    );
    assert_eq!(app.get(&handle).await.status(), 410);
    let gone = app.ap_get("/users/u1").await;
    assert_eq!(gone.status(), 410);
    let tombstone: Value = gone.json().await.expect("tombstone");
    assert_eq!(tombstone["type"], "Tombstone");
    assert_eq!(
        activity_kinds(&app).await.last().map(String::as_str),
        Some("Delete")
    );
    // After opt-out nothing new federates.
    assert_eq!(
        result_of(
            &app,
            &events::post("e10", "post.created", "u1", "p3", "later", "public")
        )
        .await,
        "ignored"
    );
    assert_eq!(app.ap_get("/posts/p3").await.status(), 404);

    let types = outbox_types(&app).await;
    assert!(
        types
            .iter()
            .filter(|t| *t == "sharing.status_changed")
            .count()
            >= 2,
        "{types:?}"
    );
    app.stop().await.expect("stop");
}
on_both_backends!(lifecycle_from_events);

async fn eligibility_pauses_and_resumes(db: TestDatabase) {
    let app = TestApp::spawn(test_settings(&db, &[])).await;
    result_of(&app, &events::eligible_user("e1", "u1", "bea")).await;
    result_of(&app, &events::sharing_on("e2", "u1")).await;
    // Going private pauses at once: the actor shows as unavailable, nothing new federates.
    let private = events::user(
        "e3",
        "user.updated",
        "u1",
        "bea",
        events::Facts {
            public: false,
            ..events::ELIGIBLE
        },
        "2026-01-02T00:00:00Z",
    );
    result_of(&app, &private).await;
    let actor: Value = app.ap_get("/users/u1").await.json().await.expect("actor");
    assert_eq!(actor["suspended"], true, "{actor}");
    assert!(actor.get("summary").is_none());
    assert_eq!(
        app.get(&format!(
            "/.well-known/webfinger?resource=acct:bea@{}",
            app.urls.domain()
        ))
        .await
        .status(),
        404
    );
    result_of(
        &app,
        &events::post("e4", "post.created", "u1", "p1", "while paused", "public"),
    )
    .await;
    assert_eq!(app.ap_get("/posts/p1").await.status(), 404);
    // A late, older profile event does not undo the newer one.
    let stale = events::user(
        "e5",
        "user.updated",
        "u1",
        "bea",
        events::ELIGIBLE,
        "2026-01-01T12:00:00Z",
    );
    assert_eq!(result_of(&app, &stale).await, "ignored");
    // Public again: resumed.
    let public = events::user(
        "e6",
        "user.updated",
        "u1",
        "bea",
        events::ELIGIBLE,
        "2026-01-03T00:00:00Z",
    );
    result_of(&app, &public).await;
    let actor: Value = app.ap_get("/users/u1").await.json().await.expect("actor");
    assert!(actor.get("suspended").is_none(), "{actor}");
    let feed: Value = app
        .client
        .get(format!("{}/api/v1/feed?after=0", app.address))
        .bearer_auth(integration_tests::API_TOKEN)
        .send()
        .await
        .expect("feed")
        .json()
        .await
        .expect("JSON");
    let states: Vec<&str> = feed["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["type"] == "sharing.status_changed")
        .filter_map(|m| m["data"]["state"].as_str())
        .collect();
    assert_eq!(states, vec!["on", "paused", "on"], "{feed}");
    assert_eq!(feed["messages"][0]["data"]["user_id"], "u1");
    app.stop().await.expect("stop");
}
on_both_backends!(eligibility_pauses_and_resumes);

#[tokio::test]
async fn bad_events_and_bad_tokens_are_refused_without_effect() {
    let db = TestDatabase::sqlite();
    let app = TestApp::spawn(test_settings(&db, &[])).await;
    let no_token = app
        .client
        .post(format!("{}/api/v1/events", app.address))
        .json(&events::eligible_user("e1", "u1", "cy"))
        .send()
        .await
        .expect("request");
    assert_eq!(no_token.status(), 401);

    let mut unknown = events::eligible_user("e2", "u1", "cy");
    unknown["type"] = "user.exploded".into();
    let mut version = events::eligible_user("e3", "u1", "cy");
    version["schema_version"] = 99.into();
    let mut missing = events::eligible_user("e4", "u1", "cy");
    missing["data"]
        .as_object_mut()
        .expect("object")
        .remove("username");
    for (event, kind) in [
        (unknown, "unknown_type"),
        (version, "unsupported_version"),
        (missing, "schema_violation"),
    ] {
        let response = app.send_event(&event).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"], kind, "{body}");
    }
    let garbage = app
        .client
        .post(format!("{}/api/v1/events", app.address))
        .bearer_auth(integration_tests::API_TOKEN)
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(garbage.status(), 400);
    let users: i64 = app
        .db
        .run(|c| Ok(schema::users::table.count().get_result(c)?))
        .await
        .expect("count");
    assert_eq!(users, 0, "nothing was stored");
    // And the stream goes on.
    assert_eq!(
        result_of(&app, &events::eligible_user("e5", "u1", "cy")).await,
        "applied"
    );
    app.stop().await.expect("stop");
}

/// Events decoded as the consumer decodes them off the queue.
fn decoded(events: &[Value]) -> std::sync::Arc<Vec<platform_adapter::InboundEvent>> {
    std::sync::Arc::new(
        events
            .iter()
            .map(|e| platform_adapter::decode_inbound(e.to_string().as_bytes()).expect("valid"))
            .collect(),
    )
}

async fn processed_ids(app: &TestApp) -> Vec<String> {
    app.db
        .run(|c| {
            Ok(schema::processed_events::table
                .order(schema::processed_events::event_id.asc())
                .select(schema::processed_events::event_id)
                .load(c)?)
        })
        .await
        .expect("processed events")
}

async fn batches_apply_in_order_and_skip_only_what_has_no_effect(db: TestDatabase) {
    use platform_adapter::{EventSink, Handled};

    let settings = test_settings(&db, &[]);
    let app = TestApp::spawn(settings.clone()).await;
    let sink = bridge::ingest::Ingest::new(
        app.db.clone(),
        app.urls.clone(),
        std::sync::Arc::new(settings),
        std::sync::Arc::default(),
    );
    let public =
        |id: &str, uid: &str, pid: &str| events::post(id, "post.created", uid, pid, "hi", "public");

    // Ada turns sharing on inside the batch: her post after that must be stored, even
    // though she did not share when the batch began. Bo never shares; the unknown author
    // has no profile at all.
    let results = sink
        .handle_batch(decoded(&[
            events::eligible_user("b1", "u1", "ada"),
            events::eligible_user("b2", "u2", "bo"),
            events::sharing_on("b3", "u1"),
            public("b4", "u1", "p1"),
            public("b5", "u2", "p2"),
            public("b6", "u9", "p3"),
            public("b4", "u1", "p1"),
        ]))
        .await;
    use Handled::{Applied, Duplicate, Ignored};
    assert_eq!(
        results,
        vec![
            Ok(Applied),
            Ok(Applied),
            Ok(Applied),
            Ok(Applied),
            Ok(Ignored),
            Ok(Ignored),
            Ok(Duplicate)
        ]
    );
    assert_eq!(activity_kinds(&app).await, ["Create"]);

    // A batch of posts by people who do not share takes no write: no event is recorded.
    let before = processed_ids(&app).await;
    let results = sink
        .handle_batch(decoded(&[
            public("c1", "u2", "p4"),
            public("c2", "u9", "p5"),
        ]))
        .await;
    assert_eq!(results, vec![Ok(Ignored), Ok(Ignored)]);
    assert_eq!(processed_ids(&app).await, before);

    // A post by a sharing user right before an edit by its author in the same batch, then
    // the edit of a post of someone who shares no more: in order, one transaction.
    let results = sink
        .handle_batch(decoded(&[
            public("d1", "u1", "p6"),
            events::post("d2", "post.updated", "u1", "p6", "edited", "public"),
        ]))
        .await;
    assert_eq!(results, vec![Ok(Applied), Ok(Applied)]);
    assert_eq!(activity_kinds(&app).await, ["Create", "Create", "Update"]);

    // One event the sink cannot apply (a delete naming the wrong author) fails the whole
    // batch: nothing of it is stored, and the consumer takes the events one at a time.
    let before = processed_ids(&app).await;
    let results = sink
        .handle_batch(decoded(&[
            public("f1", "u1", "p7"),
            events::post_deleted("f2", "u2", "p6"),
        ]))
        .await;
    assert!(results.is_empty(), "{results:?}");
    assert_eq!(processed_ids(&app).await, before);
    assert_eq!(activity_kinds(&app).await, ["Create", "Create", "Update"]);
    assert_eq!(
        sink.handle(decoded(&[public("f1", "u1", "p7")])[0].clone())
            .await,
        Ok(Applied)
    );
    assert!(
        sink.handle(decoded(&[events::post_deleted("f2", "u2", "p6")])[0].clone())
            .await
            .is_err()
    );
    app.stop().await.expect("stop");
}
on_both_backends!(batches_apply_in_order_and_skip_only_what_has_no_effect);

/// `event` as if it had happened at `occurred_at`.
fn at(mut event: Value, occurred_at: &str) -> Value {
    event["occurred_at"] = Value::String(occurred_at.to_owned());
    event
}

/// One user's events arrive in order, except one whose storage kept failing, which is
/// retried after later ones (the contract's exception). Such a late event must not undo a
/// later one: invariant, nothing the author has since made private or deleted is ever
/// published.
async fn late_events_do_not_undo_later_ones(db: TestDatabase) {
    let app = TestApp::spawn(test_settings(&db, &[])).await;
    for event in [
        events::eligible_user("e1", "u1", "ada"),
        events::sharing_on("e2", "u1"),
    ] {
        assert_eq!(result_of(&app, &event).await, "applied");
    }

    // The post was made private at 00:05; its public creation at 00:03 comes late.
    let private = at(
        events::post("e3", "post.updated", "u1", "p1", "hidden now", "private"),
        "2026-01-01T00:00:05Z",
    );
    assert_eq!(result_of(&app, &private).await, "applied");
    let created = at(
        events::post("e4", "post.created", "u1", "p1", "first version", "public"),
        "2026-01-01T00:00:03Z",
    );
    assert_eq!(result_of(&app, &created).await, "ignored");
    assert_eq!(app.ap_get("/posts/p1").await.status(), 404);

    // The post was deleted at 00:06; its creation at 00:04 comes late.
    let deleted = at(
        events::post_deleted("e5", "u1", "p2"),
        "2026-01-01T00:00:06Z",
    );
    assert_eq!(result_of(&app, &deleted).await, "applied");
    let created = at(
        events::post("e6", "post.created", "u1", "p2", "deleted since", "public"),
        "2026-01-01T00:00:04Z",
    );
    assert_eq!(result_of(&app, &created).await, "ignored");
    assert_eq!(app.ap_get("/posts/p2").await.status(), 404);
    assert!(
        activity_kinds(&app).await.is_empty(),
        "nothing was published"
    );

    // Events in order still apply, including two in the same second.
    let fresh = at(
        events::post("e7", "post.created", "u1", "p3", "hello", "public"),
        "2026-01-01T00:00:07Z",
    );
    let edit = at(
        events::post("e8", "post.updated", "u1", "p3", "hello again", "public"),
        "2026-01-01T00:00:07Z",
    );
    assert_eq!(result_of(&app, &fresh).await, "applied");
    assert_eq!(result_of(&app, &edit).await, "applied");
    // A stale edit does not overwrite the newer text.
    let stale = at(
        events::post("e9", "post.updated", "u1", "p3", "stale", "public"),
        "2026-01-01T00:00:06Z",
    );
    assert_eq!(result_of(&app, &stale).await, "ignored");
    let note: Value = app.ap_get("/posts/p3").await.json().await.expect("note");
    let content = note["content"].as_str().expect("content");
    assert!(content.contains("hello again"), "{content}");
    assert_eq!(activity_kinds(&app).await, ["Create", "Update"]);
    app.stop().await.expect("stop");
}
on_both_backends!(late_events_do_not_undo_later_ones);

/// A sink on a fresh, migrated database with no bridge running, so nothing is delivered
/// and the queued deliveries stay as the sink left them.
async fn bare_sink(db: &TestDatabase) -> (bridge::db::Database, bridge::ingest::Ingest) {
    let settings = test_settings(db, &[]);
    let database = bridge::db::Database::new(&settings.database).expect("database");
    database.migrate().await.expect("migrations");
    let urls = bridge::federation::urls::Urls::new(&settings.federation).expect("urls");
    let sink = bridge::ingest::Ingest::new(
        database.clone(),
        urls,
        std::sync::Arc::new(settings),
        std::sync::Arc::default(),
    );
    (database, sink)
}

/// A stored post as the comparison sees it: platform id, author, text, visibility,
/// federation state, reply target, mentions, federated at all, deleted.
type PostRow = (
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    bool,
    bool,
);

/// What a batch must leave exactly as its events one at a time would, ids aside: posts,
/// activities, deliveries and recorded event ids, each sorted where storage order is not
/// part of the contract.
#[derive(Debug, PartialEq)]
struct IngestState {
    /// Every post, by platform id.
    posts: Vec<PostRow>,
    /// Objects of the `Create` activities in the order they were stored, with their JSON.
    creates: Vec<(Option<String>, Value)>,
    /// (kind, object, author) of every activity.
    activities: Vec<(String, Option<String>, Option<i64>)>,
    /// (kind, object, inbox, host, state) of every queued delivery.
    deliveries: Vec<(String, Option<String>, String, String, String)>,
    /// (event id, type) recorded.
    processed: Vec<(String, String)>,
}

async fn ingest_state(db: &bridge::db::Database) -> IngestState {
    use schema::{activities, deliveries, posts, processed_events};
    db.run(|c| {
        let posts = posts::table
            .order(posts::platform_post_id.asc())
            .select((
                posts::platform_post_id,
                posts::user_id,
                posts::text,
                posts::visibility,
                posts::federation_state,
                posts::reply_to_platform_post_id,
                posts::mentions,
                posts::federated_at.is_not_null(),
                posts::deleted_at.is_not_null(),
            ))
            .load(c)?;
        let creates: Vec<(Option<String>, String)> = activities::table
            .filter(activities::kind.eq("Create"))
            .order(activities::id.asc())
            .select((activities::object_ap_id, activities::payload))
            .load(c)?;
        let mut activities: Vec<(String, Option<String>, Option<i64>)> = activities::table
            .select((
                activities::kind,
                activities::object_ap_id,
                activities::user_id,
            ))
            .load(c)?;
        activities.sort();
        let mut deliveries: Vec<(String, Option<String>, String, String, String)> =
            deliveries::table
                .inner_join(activities::table)
                .select((
                    activities::kind,
                    activities::object_ap_id,
                    deliveries::inbox,
                    deliveries::host,
                    deliveries::state,
                ))
                .load(c)?;
        deliveries.sort();
        let processed = processed_events::table
            .order(processed_events::event_id.asc())
            .select((processed_events::event_id, processed_events::event_type))
            .load(c)?;
        Ok(IngestState {
            posts,
            creates: creates
                .into_iter()
                .map(|(object, payload)| {
                    (
                        object,
                        serde_json::from_str(&payload).expect("payload JSON"),
                    )
                })
                .collect(),
            activities,
            deliveries,
            processed,
        })
    })
    .await
    .expect("read state")
}

/// Users, followers and one federated post, the same on every database of the test: Ada
/// (u1) with three followers behind two inboxes, Bo (u2) with one follower on one of those
/// inboxes, Cy (u3) without followers, Dee (u4) who does not share.
async fn seed(db: &bridge::db::Database, sink: &bridge::ingest::Ingest) {
    use bridge::db::users;
    use integration_tests::sharing::{insert_follower, remote_person};
    use platform_adapter::EventSink;

    let mut setup = Vec::new();
    for (n, (uid, name)) in [("u1", "ada"), ("u2", "bo"), ("u3", "cy"), ("u4", "dee")]
        .into_iter()
        .enumerate()
    {
        setup.push(events::eligible_user(&format!("s{n}"), uid, name));
        if uid != "u4" {
            setup.push(events::sharing_on(&format!("s{n}on"), uid));
        }
    }
    for event in decoded(&setup).iter() {
        sink.handle(event.clone()).await.expect("set-up event");
    }
    db.write(|c| {
        let now = bridge::db::now_millis();
        let shared = Some("https://a.example/inbox".to_owned());
        let ada = users::find_by_platform_id(c, "u1")?.expect("ada").id;
        let bo = users::find_by_platform_id(c, "u2")?.expect("bo").id;
        let amy = remote_person("https://a.example", "a.example", "amy", shared.clone());
        let abe = remote_person("https://a.example", "a.example", "abe", shared);
        let bob = remote_person("https://b.example", "b.example", "bob", None);
        insert_follower(c, ada, &amy, "https://a.example/f/amy-ada", true, now)?;
        insert_follower(c, ada, &abe, "https://a.example/f/abe-ada", true, now)?;
        insert_follower(c, ada, &bob, "https://b.example/f/bob-ada", true, now)?;
        insert_follower(c, bo, &amy, "https://a.example/f/amy-bo", true, now)?;
        Ok(())
    })
    .await
    .expect("followers");
    let first = events::post("s9", "post.created", "u1", "p0", "first", "public");
    sink.handle(decoded(&[first])[0].clone())
        .await
        .expect("first post");
}

async fn batched_posts_leave_what_one_at_a_time_leaves(backend: integration_tests::Backend) {
    use platform_adapter::{EventSink, Handled};

    let (Some(one_db), Some(batch_db)) = (TestDatabase::new(backend), TestDatabase::new(backend))
    else {
        return;
    };
    let public =
        |id: &str, uid: &str, pid: &str| events::post(id, "post.created", uid, pid, "hi", "public");
    let mut reply = public("e6", "u2", "p4");
    reply["data"]["reply_to"] = serde_json::json!({ "post_id": "p1" });
    let mut mentioning = public("e8", "u3", "p6");
    mentioning["data"]["text"] = "hi @zed@z.example".into();
    mentioning["data"]["mentions"] =
        serde_json::json!([{ "handle": "@zed@z.example", "url": "https://z.example/@zed" }]);
    let mut early_reply = public("e13", "u3", "p10");
    early_reply["data"]["reply_to"] = serde_json::json!({ "post_id": "p11" });
    let batch = [
        public("e1", "u1", "p1"),
        public("e2", "u2", "p2"),
        // Dee does not share: ignored, as in the one-at-a-time path.
        public("e3", "u4", "p3"),
        // The same event twice in one batch: the first one counts.
        public("e1", "u1", "p1"),
        // A new event for a post stored before the batch: an edit of a federated post.
        events::post("e5", "post.created", "u1", "p0", "first, again", "public"),
        // A reply to a post of this batch needs that post published first.
        reply,
        events::post(
            "e7",
            "post.created",
            "u1",
            "p5",
            "friends only",
            "followers",
        ),
        mentioning,
        events::sharing_off("e9", "u2"),
        // Bo no longer shares: the edit is stored, nothing federates.
        events::post("e10", "post.updated", "u2", "p2", "edited", "public"),
        public("e11", "u3", "p8"),
        public("e12", "u1", "p9"),
        // A reply to a post that arrives after it: one at a time, the reply finds no
        // target and federates as a top-level post; so must it in a batch.
        early_reply,
        public("e14", "u3", "p11"),
        // Duplicates of an event earlier in the batch and of one applied before it.
        public("e8", "u3", "p6"),
        events::post("s9", "post.created", "u1", "p0", "first", "public"),
    ];

    let (one_store, one_sink) = bare_sink(&one_db).await;
    seed(&one_store, &one_sink).await;
    let mut one_results = Vec::new();
    for event in decoded(&batch).iter() {
        let result = one_sink
            .handle_batch(std::sync::Arc::new(vec![event.clone()]))
            .await;
        assert_eq!(result.len(), 1, "{event:?}");
        one_results.extend(result);
    }

    let (batch_store, batch_sink) = bare_sink(&batch_db).await;
    seed(&batch_store, &batch_sink).await;
    let batch_results = batch_sink.handle_batch(decoded(&batch)).await;

    use Handled::{Applied, Duplicate, Ignored};
    let expected = [
        Applied, Applied, Ignored, Duplicate, Applied, Applied, Applied, Applied, Applied, Applied,
        Applied, Applied, Applied, Applied, Duplicate, Duplicate,
    ]
    .map(Ok)
    .to_vec();
    assert_eq!(one_results, expected);
    assert_eq!(batch_results, expected);

    let one = ingest_state(&one_store).await;
    let batched = ingest_state(&batch_store).await;
    assert_eq!(batched, one);

    // And what both leave is what the events mean.
    let created: Vec<Option<String>> = one.creates.iter().map(|(o, _)| o.clone()).collect();
    let objects: Vec<&str> = created
        .iter()
        .map(|o| {
            o.as_deref()
                .and_then(|o| o.rsplit('/').next())
                .unwrap_or("")
        })
        .collect();
    assert_eq!(
        objects,
        ["p0", "p1", "p2", "p4", "p6", "p8", "p9", "p10", "p11"],
        "{created:?}"
    );
    let reply_note = &one.creates[3].1["object"];
    assert!(
        reply_note["inReplyTo"]
            .as_str()
            .is_some_and(|target| target.ends_with("/posts/p1")),
        "{reply_note}"
    );
    let early_note = &one.creates[7].1["object"];
    assert!(early_note["inReplyTo"].is_null(), "{early_note}");
    let p1_inboxes: Vec<&str> = one
        .deliveries
        .iter()
        .filter(|(kind, object, ..)| {
            kind == "Create" && object.as_deref().is_some_and(|o| o.ends_with("/posts/p1"))
        })
        .map(|(_, _, inbox, ..)| inbox.as_str())
        .collect();
    assert_eq!(
        p1_inboxes,
        [
            "https://a.example/inbox",
            "https://b.example/users/bob/inbox"
        ]
    );
    let stored: Vec<(&str, &str)> = one
        .posts
        .iter()
        .map(|p| (p.0.as_str(), p.4.as_str()))
        .collect();
    assert_eq!(
        stored,
        [
            ("p0", "federated"),
            ("p1", "federated"),
            ("p10", "federated"),
            ("p11", "federated"),
            ("p2", "retracted"),
            ("p4", "retracted"),
            ("p5", "never"),
            ("p6", "federated"),
            ("p8", "federated"),
            ("p9", "federated"),
        ]
    );
    let recorded: Vec<&str> = one.processed.iter().map(|(id, _)| id.as_str()).collect();
    assert!(!recorded.contains(&"e3"), "{recorded:?}");
    for id in ["e1", "e5", "e9", "e10", "e12"] {
        assert!(recorded.contains(&id), "{id} in {recorded:?}");
    }
}

mod batched_posts_leave_what_one_at_a_time_leaves {
    #[tokio::test]
    async fn sqlite() {
        super::batched_posts_leave_what_one_at_a_time_leaves(integration_tests::Backend::Sqlite)
            .await;
    }
    #[tokio::test]
    async fn postgres() {
        super::batched_posts_leave_what_one_at_a_time_leaves(integration_tests::Backend::Postgres)
            .await;
    }
}
