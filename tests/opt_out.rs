//! The opt-in lifecycle end to end: eligibility pausing and resuming sharing, and opting
//! out sending `Delete` to everyone who had the user's content, with a removal receipt that
//! counts the answers, and nothing federating afterwards. SQLite and PostgreSQL.

use integration_tests::{
    Backend,
    sharing::{SharingApp, event, on_both},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn get(app: &SharingApp, path: &str) -> Value {
    let response = app.api(Method::GET, path).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("JSON")
}

async fn post(app: &SharingApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .api(Method::POST, path)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

fn profile_event(user_id: &str, username: &str, adult: bool) -> platform_adapter::InboundEvent {
    let (user_id, username) = (user_id.to_owned(), username.to_owned());
    event("user.updated", move |json| {
        json["order_key"] = json!(user_id);
        json["occurred_at"] = json!(chrono::Utc::now().to_rfc3339());
        let data = &mut json["data"];
        data["user_id"] = json!(user_id);
        data["username"] = json!(username);
        data["public_profile"] = json!(true);
        data["adult"] = json!(adult);
        data["suspended"] = json!(false);
    })
}

fn post_event(user_id: &str, post_id: &str) -> platform_adapter::InboundEvent {
    let (user_id, post_id) = (user_id.to_owned(), post_id.to_owned());
    event("post.created", move |json| {
        json["order_key"] = json!(user_id);
        let data = &mut json["data"];
        data["author_id"] = json!(user_id);
        data["post_id"] = json!(post_id);
        data["reply_to"] = Value::Null;
        data["mentions"] = json!([]);
    })
}

async fn eligibility(backend: Backend) {
    let Some(app) = SharingApp::start(backend, &[]).await else {
        return;
    };
    let ingest = app.ingest();
    ingest
        .apply(profile_event("u1", "alice", true))
        .await
        .expect("profile");
    let (status, _) = post(
        &app,
        "/users/u1/sharing",
        json!({"enabled": true, "consent": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let user = app.reload("u1").await;
    app.follower(&user, "one.example", "bob", true).await;

    // The platform says the user is no longer an adult: paused at once.
    ingest
        .apply(profile_event("u1", "alice", false))
        .await
        .expect("profile");
    let paused = get(&app, "/users/u1/sharing").await;
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["failing_gates"][0]["gate"], "adult");
    // Nothing new federates while paused.
    ingest
        .apply(post_event("u1", "p-paused"))
        .await
        .expect("post");
    let kinds: Vec<String> = app
        .activities(&user)
        .await
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(
        kinds,
        ["Update"],
        "only the actor update announcing the pause"
    );

    // Eligible again: resumes by itself.
    ingest
        .apply(profile_event("u1", "alice", true))
        .await
        .expect("profile");
    let resumed = get(&app, "/users/u1/sharing").await;
    assert_eq!(resumed["state"], "on");
    assert_eq!(resumed["failing_gates"], json!([]));
    ingest.apply(post_event("u1", "p-on")).await.expect("post");
    let activities = app.activities(&user).await;
    let kinds: Vec<&str> = activities.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["Update", "Update", "Create"]);
    assert_eq!(
        activities[2].object.as_deref(),
        Some("https://bridge.example/posts/p-on")
    );

    let audit = get(&app, "/users/u1/audit").await;
    let trail: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["action"].as_str().expect("action"),
                i["initiator"].as_str().expect("initiator"),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("sharing.resumed", "system"),
            ("sharing.paused", "system"),
            ("sharing.on", "platform"),
        ]
    );

    // The same through the lifecycle directly.
    let mut facts = integration_tests::sharing::profile("u1", "alice", true);
    facts.is_suspended = true;
    let settings = app.settings.clone();
    let urls = app.urls.clone();
    let state = app
        .db
        .write(move |c| {
            let now = bridge::db::now_millis();
            let (user, _) = bridge::db::users::upsert_profile(c, &facts, now)?;
            let cx = bridge::opt_in::lifecycle::Context {
                rules: &settings.sharing,
                urls: &urls,
                initiator: bridge::opt_in::Initiator::System,
                now,
            };
            Ok(bridge::opt_in::lifecycle::reevaluate(c, &user, cx)?.sharing())
        })
        .await
        .expect("reevaluate");
    assert_eq!(state, bridge::opt_in::SharingState::Paused);
    app.app.stop().await.expect("stops");
}

#[tokio::test]
async fn losing_eligibility_pauses_and_regaining_it_resumes() {
    on_both(eligibility).await;
}

async fn opt_out(backend: Backend) {
    let Some(app) = SharingApp::start(backend, &[]).await else {
        return;
    };
    let ingest = app.ingest();
    ingest
        .apply(profile_event("u1", "alice", true))
        .await
        .expect("profile");
    post(
        &app,
        "/users/u1/sharing",
        json!({"enabled": true, "consent": true}),
    )
    .await;
    let user = app.reload("u1").await;
    let bob = app.follower(&user, "one.example", "bob", true).await;
    app.follower(&user, "two.example", "carol", true).await;
    app.follower(&user, "two.example", "dan", true).await;
    ingest.apply(post_event("u1", "p1")).await.expect("post");
    ingest.apply(post_event("u1", "p2")).await.expect("post");
    let note = "https://bridge.example/posts/p1";
    // A server that only fetched a post, and one that saw the profile.
    app.ledger(&user, note, "fetcher.example").await;
    app.ledger(&user, "https://bridge.example/users/u1", "viewer.example")
        .await;
    let before = app.activities(&user).await.len();

    let (status, off) = post(&app, "/users/u1/sharing", json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_eq!(off["state"], "off");
    assert_eq!(off["followers"], 0);
    assert!(off["cooldown_until"].is_string());

    let deletes: Vec<_> = app.activities(&user).await.split_off(before);
    assert!(deletes.iter().all(|a| a.kind == "Delete"), "{deletes:?}");
    let objects: Vec<&str> = deletes
        .iter()
        .map(|a| a.object.as_deref().expect("object"))
        .collect();
    assert_eq!(objects.len(), 3, "two posts and the actor: {objects:?}");
    let actor_delete = deletes
        .iter()
        .find(|a| a.object.as_deref() == Some("https://bridge.example/users/u1"))
        .expect("Delete(actor)");
    assert_eq!(
        actor_delete.inboxes,
        [
            "https://fetcher.example/inbox",
            "https://one.example/inbox",
            "https://two.example/inbox",
            "https://viewer.example/inbox",
        ]
    );
    let p1_delete = deletes
        .iter()
        .find(|a| a.object.as_deref() == Some(note))
        .expect("Delete(p1)");
    assert_eq!(
        p1_delete.inboxes,
        [
            "https://fetcher.example/inbox",
            "https://one.example/inbox",
            "https://two.example/inbox",
        ]
    );

    // The receipt follows the answers, server by server.
    let receipt = get(&app, "/users/u1/removal").await;
    assert_eq!(
        (
            &receipt["requested"],
            &receipt["pending"],
            &receipt["complete"]
        ),
        (&json!(4), &json!(4), &json!(false))
    );
    app.answer("one.example", "delivered", Some(202)).await;
    app.answer("two.example", "failed", Some(410)).await;
    let receipt = get(&app, "/users/u1/removal").await;
    assert_eq!(receipt["acknowledged"], 2);
    assert_eq!(receipt["pending"], 2);
    app.answer("fetcher.example", "expired", None).await;
    app.answer("viewer.example", "failed", Some(403)).await;
    let receipt = get(&app, "/users/u1/removal").await;
    assert_eq!(
        receipt,
        json!({
            "started_at": receipt["started_at"],
            "requested": 4,
            "acknowledged": 2,
            "failed": 1,
            "unreachable": 1,
            "pending": 0,
            "complete": true,
        })
    );
    assert_eq!(get(&app, "/users/u1/sharing").await["removal"], receipt);

    // Nothing federates any more, and the cooldown holds.
    let count = app.activities(&user).await.len();
    ingest.apply(post_event("u1", "p3")).await.expect("post");
    assert_eq!(app.activities(&user).await.len(), count);
    let (status, refused) = post(
        &app,
        "/users/u1/sharing",
        json!({"enabled": true, "consent": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(refused["reason"], "cooling_down");
    assert!(refused["until"].is_string());

    // The actor is gone for the fediverse.
    let actor = app
        .app
        .client
        .get(format!("{}/users/u1", app.app.address))
        .header("accept", "application/activity+json")
        .send()
        .await
        .expect("request");
    assert_eq!(actor.status(), StatusCode::GONE);
    let _ = bob;
    app.app.stop().await.expect("stops");
}

#[tokio::test]
async fn opting_out_deletes_everywhere_and_the_receipt_counts_answers() {
    on_both(opt_out).await;
}
