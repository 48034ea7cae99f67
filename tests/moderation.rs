//! Reports end to end: a platform user's report reaches the reported account's server (the
//! independent peer, Lemmy's `activitypub_federation` crate) as a `Flag` signed by our
//! instance actor and verified there, without the reporter's identity; reports that can
//! never be forwarded are refused with their reason.

use std::time::Duration;

use bridge::db::{
    blocks, now_millis,
    schema::{activities, deliveries, platform_reports},
};
use diesel::prelude::*;
use integration_tests::{
    Backend, TestApp, TestDatabase, events,
    peer::{ActivityKind, RemotePeer},
    spawn_on_localhost,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// POSTs an event; returns (status, body).
async fn send(app: &TestApp, event: &Value) -> (u16, Value) {
    let response = app.send_event(event).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

async fn count<T>(app: &TestApp, query: T) -> i64
where
    T: FnOnce(&mut bridge::db::AnyConnection) -> QueryResult<i64> + Send + 'static,
{
    app.db.run(move |c| Ok(query(c)?)).await.expect("query")
}

async fn reports_reach_the_reported_server(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let (app, base) = spawn_on_localhost(&db).await;
    let peer = RemotePeer::start("spammer").await;
    let target = peer.actor_id().to_string();
    let post = peer.post("buy now").await.expect("post").to_string();

    // The bridge has never heard of the account: it fetches it, then the Flag goes out.
    let (status, body) = send(
        &app,
        &events::report("e1", "rep_1", "u_77", &target, &[&post], "Scam links", true),
    )
    .await;
    assert_eq!(
        (status, body["result"].clone()),
        (200, json!("applied")),
        "{body}"
    );
    let flag = peer
        .wait_for(|a| a.kind == ActivityKind::Flag, WAIT)
        .await
        .unwrap_or_else(|| panic!("no Flag verified by the peer: {:?}", peer.rejections()));
    assert_eq!(flag.actor.as_str(), format!("{base}/actor"));
    assert_eq!(flag.object, json!([target, post]));
    assert_eq!(flag.json["content"], json!("Scam links"));
    let sent = flag.json.to_string();
    for private in ["u_77", "rep_1", "e1\""] {
        assert!(!sent.contains(private), "{private} leaked in {sent}");
    }
    assert_eq!(peer.rejected_count(), 0, "{:?}", peer.rejections());
    let inboxes: Vec<String> = app
        .db
        .run(|c| Ok(deliveries::table.select(deliveries::inbox).load(c)?))
        .await
        .expect("deliveries");
    assert_eq!(inboxes, vec![peer.shared_inbox().to_string()]);

    // Reports stay between the servers' moderators: the Flag is not served.
    let path = flag.id.path().to_owned();
    assert_eq!(app.ap_get(&path).await.status(), 404);

    // The same report again (a new event id) sends nothing more; a report the platform
    // keeps to itself sends nothing at all.
    let (status, body) = send(
        &app,
        &events::report("e2", "rep_1", "u_77", &target, &[], "again", true),
    )
    .await;
    assert_eq!(
        (status, body["result"].clone()),
        (200, json!("ignored")),
        "{body}"
    );
    let (status, _) = send(
        &app,
        &events::report("e3", "rep_2", "u_78", &target, &[], "meh", false),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        count(&app, |c| activities::table.count().get_result(c)).await,
        1,
        "one Flag only"
    );

    // Reports that can never be forwarded are refused with the reason.
    let local = format!("{base}/users/u1");
    let elsewhere = "http://other.example/notes/1";
    let missing = format!("http://{}/users/nobody", peer.domain());
    for (id, report, reason) in [
        (
            "e4",
            events::report("e4", "rep_3", "u_77", &local, &[], "", true),
            "on this bridge",
        ),
        (
            "e5",
            events::report("e5", "rep_4", "u_77", &target, &[elsewhere], "", true),
            "not on",
        ),
        (
            "e6",
            events::report("e6", "rep_5", "u_77", &missing, &[], "", true),
            "404",
        ),
    ] {
        let (status, body) = send(&app, &report).await;
        assert_eq!(status, 422, "{id}: {body}");
        assert!(
            body["reason"].as_str().is_some_and(|r| r.contains(reason)),
            "{id}: {body}"
        );
    }

    // A server the operator rejects is never contacted: the report is kept, not sent.
    app.db
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
        .expect("block");
    let unknown = format!("http://{}/users/someone", peer.domain());
    let fetches = peer.actor_fetches();
    let (status, body) = send(
        &app,
        &events::report("e7", "rep_6", "u_77", &unknown, &[], "", true),
    )
    .await;
    assert_eq!(
        (status, body["result"].clone()),
        (200, json!("applied")),
        "{body}"
    );
    assert_eq!(peer.actor_fetches(), fetches);
    let states: Vec<(String, String)> = app
        .db
        .run(|c| {
            Ok(platform_reports::table
                .order(platform_reports::id.asc())
                .select((platform_reports::report_id, platform_reports::state))
                .load(c)?)
        })
        .await
        .expect("reports");
    let states: Vec<(&str, &str)> = states
        .iter()
        .map(|(r, s)| (r.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("rep_1", "forwarded"),
            ("rep_2", "kept"),
            ("rep_6", "withheld")
        ]
    );
    assert_eq!(
        count(&app, |c| activities::table.count().get_result(c)).await,
        1
    );
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_forwarded_report_reaches_the_peer_as_a_verified_flag_on_sqlite() {
    reports_reach_the_reported_server(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_forwarded_report_reaches_the_peer_as_a_verified_flag_on_postgres() {
    reports_reach_the_reported_server(Backend::Postgres).await;
}
