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
