//! The toggle API, black-box: authentication, every route, bad input, on SQLite and
//! PostgreSQL.

use std::collections::BTreeSet;

use integration_tests::{
    Backend,
    sharing::{SharingApp, TOKEN, on_both},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn expect_status(request: reqwest::RequestBuilder, status: StatusCode) -> Value {
    let response = request.send().await.expect("request");
    let got = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(got, status, "body: {body}");
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

#[tokio::test]
async fn authentication_is_required_and_constant() {
    let Some(app) = SharingApp::start(Backend::Sqlite, &[]).await else {
        return;
    };
    app.user("u1", "alice", true).await;
    let url = format!("{}/api/v1/users/u1/sharing", app.app.address);

    let missing = app.app.client.get(&url).send().await.expect("request");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let challenge = missing
        .headers()
        .get("www-authenticate")
        .expect("WWW-Authenticate")
        .to_str()
        .expect("ascii");
    assert!(challenge.starts_with("Bearer"), "{challenge}");

    let wrong = app.app.client.get(&url).bearer_auth("nope").send().await;
    assert_eq!(wrong.expect("request").status(), StatusCode::UNAUTHORIZED);
    let basic = app
        .app
        .client
        .get(&url)
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await;
    assert_eq!(basic.expect("request").status(), StatusCode::UNAUTHORIZED);
    let right = app.app.client.get(&url).bearer_auth(TOKEN).send().await;
    assert_eq!(right.expect("request").status(), StatusCode::OK);

    // The document needs no token.
    let doc = app.app.get("/api/v1/openapi.yaml").await;
    assert_eq!(doc.status(), StatusCode::OK);
    assert!(doc.text().await.expect("text").starts_with("openapi: 3.1"));

    let disabled = SharingApp::start(Backend::Sqlite, &[("FEDIBRIDGE__PLATFORM__API_TOKEN", "")])
        .await
        .expect("sqlite");
    let body = expect_status(
        disabled.api(Method::GET, "/users/u1/sharing"),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(body["error"], "api_disabled");
    let body = expect_status(
        disabled.api(Method::POST, "/users/u1/settings-link"),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("API disabled")
    );
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document() {
    let Some(app) = SharingApp::start(Backend::Sqlite, &[]).await else {
        return;
    };
    let text = app
        .app
        .get("/api/v1/openapi.yaml")
        .await
        .text()
        .await
        .expect("document");
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("valid YAML");
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let paths = doc["paths"].as_mapping().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path key");
        for (method, _) in item.as_mapping().expect("path item") {
            let method = method.as_str().expect("method");
            if method != "parameters" {
                documented.insert((method.to_owned(), path.to_owned()));
            }
        }
    }
    let implemented: BTreeSet<(String, String)> = bridge::http::api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let undocumented: Vec<_> = implemented.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "not in openapi.yaml: {undocumented:?}"
    );
    let unimplemented: Vec<_> = documented.difference(&implemented).collect();
    assert!(
        unimplemented.is_empty(),
        "documented only: {unimplemented:?}"
    );
}

async fn sharing_on_and_refusals(backend: Backend) {
    let Some(app) = SharingApp::start(backend, &[]).await else {
        return;
    };
    app.user("u1", "alice", true).await;
    app.user("minor", "kid", false).await;

    expect_status(
        app.api(Method::GET, "/users/nobody/sharing"),
        StatusCode::NOT_FOUND,
    )
    .await;
    let status = expect_status(app.api(Method::GET, "/users/u1/sharing"), StatusCode::OK).await;
    assert_eq!(status["state"], "off");
    assert_eq!(status["handle"], "@alice@bridge.example");
    assert_eq!(status["actor"], "https://bridge.example/users/u1");
    assert_eq!(status["failing_gates"], json!([]));
    assert_eq!(status["removal"], Value::Null);

    // Bad input names the field.
    for (body, field) in [
        (json!({}), "enabled"),
        (json!({"enabled": "yes"}), "enabled"),
        (json!({"enabled": true, "consent": 1}), "consent"),
        (json!({"enabled": true, "extra": 1}), "extra"),
    ] {
        let answer = expect_status(
            app.api(Method::POST, "/users/u1/sharing").json(&body),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let answer = expect_status(
        app.api(Method::POST, "/users/u1/sharing").body("{not json"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(answer["error"], "invalid_request");

    let refused = expect_status(
        app.api(Method::POST, "/users/u1/sharing")
            .json(&json!({"enabled": true})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(refused["reason"], "consent_required");
    let refused = expect_status(
        app.api(Method::POST, "/users/minor/sharing")
            .json(&json!({"enabled": true, "consent": true})),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(refused["reason"], "ineligible");
    assert_eq!(refused["gates"][0]["gate"], "adult");
    assert!(
        refused["gates"][0]["explanation"]
            .as_str()
            .expect("explanation")
            .contains("adults")
    );
    expect_status(
        app.api(Method::POST, "/users/nobody/sharing")
            .json(&json!({"enabled": true, "consent": true})),
        StatusCode::NOT_FOUND,
    )
    .await;

    let on = expect_status(
        app.api(Method::POST, "/users/u1/sharing")
            .json(&json!({"enabled": true, "consent": true})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(on["state"], "on");
    assert!(on["consented_at"].is_string());
    // Idempotent.
    let again = expect_status(
        app.api(Method::POST, "/users/u1/sharing")
            .json(&json!({"enabled": true, "consent": true})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["state"], "on");

    let audit = expect_status(app.api(Method::GET, "/users/u1/audit"), StatusCode::OK).await;
    let first = &audit["items"][0];
    assert_eq!(first["action"], "sharing.on");
    assert_eq!(first["initiator"], "platform");
    assert_eq!(audit["items"].as_array().expect("items").len(), 1);
    let bad = expect_status(
        app.api(Method::GET, "/users/u1/audit?limit=abc"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad["field"], "limit");

    let link = expect_status(
        app.api(Method::POST, "/users/u1/settings-link"),
        StatusCode::OK,
    )
    .await;
    let url = link["url"].as_str().expect("url");
    assert!(
        url.starts_with("https://bridge.example/settings?u=u1&exp="),
        "{url}"
    );
    assert!(url.contains("&sig="));
    assert!(link["expires_at"].is_string());
    expect_status(
        app.api(Method::POST, "/users/nobody/settings-link"),
        StatusCode::NOT_FOUND,
    )
    .await;
    app.app.stop().await.expect("stops");
}

#[tokio::test]
async fn turning_sharing_on_and_refusals() {
    on_both(sharing_on_and_refusals).await;
}

async fn followers_and_requests(backend: Backend) {
    let Some(app) = SharingApp::start(backend, &[]).await else {
        return;
    };
    let user = app.user("u1", "alice", true).await;
    expect_status(
        app.api(Method::POST, "/users/u1/sharing")
            .json(&json!({"enabled": true, "consent": true})),
        StatusCode::OK,
    )
    .await;
    let bob = app.follower(&user, "one.example", "bob", true).await;
    let carol = app.follower(&user, "two.example", "carol", true).await;
    let dan = app.follower(&user, "two.example", "dan", false).await;
    let erin = app.follower(&user, "three.example", "erin", false).await;

    let page = expect_status(
        app.api(Method::GET, "/users/u1/followers?limit=1"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"][0]["actor"], bob.as_str());
    assert_eq!(page["items"][0]["handle"], "@bob@one.example");
    let next = page["next"].as_str().expect("cursor");
    let page = expect_status(
        app.api(
            Method::GET,
            &format!("/users/u1/followers?limit=1&after={next}"),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"][0]["actor"], carol.as_str());
    let page = expect_status(app.api(Method::GET, "/users/u1/followers"), StatusCode::OK).await;
    assert_eq!(page["items"].as_array().expect("items").len(), 2);
    assert_eq!(page["next"], Value::Null);
    for query in ["limit=0", "limit=201", "limit=x", "after=-1"] {
        let bad = expect_status(
            app.api(Method::GET, &format!("/users/u1/followers?{query}")),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(bad["field"], query.split('=').next().expect("name"));
    }
    let pending = expect_status(
        app.api(Method::GET, "/users/u1/followers/pending"),
        StatusCode::OK,
    )
    .await;
    let pending: Vec<&str> = pending["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["actor"].as_str().expect("actor"))
        .collect();
    assert_eq!(pending, [dan.as_str(), erin.as_str()]);

    let csv = app
        .api(Method::GET, "/users/u1/followers.csv")
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    let csv = csv.text().await.expect("text");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "actor,handle,followed_since");
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with(&format!("{bob},@bob@one.example,20")),
        "{csv}"
    );

    // Approve one request, refuse the other.
    expect_status(
        app.api(Method::POST, "/users/u1/followers/pending/approve")
            .json(&json!({"actor": dan})),
        StatusCode::OK,
    )
    .await;
    expect_status(
        app.api(Method::POST, "/users/u1/followers/pending/refuse")
            .json(&json!({"actor": erin})),
        StatusCode::OK,
    )
    .await;
    let again = expect_status(
        app.api(Method::POST, "/users/u1/followers/pending/refuse")
            .json(&json!({"actor": erin})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(again["error"], "no_such_follower");
    let bad = expect_status(
        app.api(Method::POST, "/users/u1/followers/pending/approve")
            .json(&json!({"actor": "not a url"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad["field"], "actor");
    let bad = expect_status(
        app.api(Method::POST, "/users/u1/followers/pending/approve")
            .json(&json!({})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad["field"], "actor");

    // Remove an accepted follower.
    expect_status(
        app.api(Method::DELETE, &format!("/users/u1/followers?actor={bob}")),
        StatusCode::OK,
    )
    .await;
    expect_status(
        app.api(Method::DELETE, &format!("/users/u1/followers?actor={bob}")),
        StatusCode::NOT_FOUND,
    )
    .await;
    let bad = expect_status(
        app.api(Method::DELETE, "/users/u1/followers"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(bad["field"], "actor");

    let status = expect_status(app.api(Method::GET, "/users/u1/sharing"), StatusCode::OK).await;
    assert_eq!(status["followers"], 2, "carol and the approved dan");
    assert_eq!(status["pending_followers"], 0);

    let sent = app.activities(&user).await;
    let answers: Vec<(&str, &str, &[String])> = sent
        .iter()
        .map(|a| {
            (
                a.kind.as_str(),
                a.payload["object"]["actor"].as_str().unwrap_or_default(),
                a.inboxes.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        answers,
        [
            ("Accept", dan.as_str(), &[format!("{dan}/inbox")][..]),
            ("Reject", erin.as_str(), &[format!("{erin}/inbox")][..]),
            ("Reject", bob.as_str(), &[format!("{bob}/inbox")][..]),
        ]
    );
    let reject = &sent[2].payload;
    assert_eq!(reject["object"]["type"], "Follow");
    assert_eq!(reject["object"]["id"], "https://one.example/follows/bob");

    let audit = expect_status(app.api(Method::GET, "/users/u1/audit"), StatusCode::OK).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "follower.removed",
            "follower.refused",
            "follower.approved",
            "sharing.on"
        ]
    );
    app.app.stop().await.expect("stops");
}

#[tokio::test]
async fn followers_can_be_listed_exported_removed_and_approved() {
    on_both(followers_and_requests).await;
}

async fn blocks(backend: Backend) {
    let Some(app) = SharingApp::start(backend, &[]).await else {
        return;
    };
    let user = app.user("u1", "alice", true).await;
    expect_status(
        app.api(Method::POST, "/users/u1/sharing")
            .json(&json!({"enabled": true, "consent": true})),
        StatusCode::OK,
    )
    .await;
    let bob = app.follower(&user, "one.example", "bob", true).await;
    let carol = app.follower(&user, "spam.example", "carol", true).await;
    let dan = app.follower(&user, "spam.example", "dan", false).await;
    let erin = app.follower(&user, "m.spam.example", "erin", true).await;
    let keep = app.follower(&user, "two.example", "keep", true).await;

    let outcome = expect_status(
        app.api(Method::POST, "/users/u1/blocks")
            .json(&json!({"domain": "Spam.Example"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(outcome["followers_removed"], 3, "subdomains too");
    assert_eq!(outcome["block_sent"], false);
    let outcome = expect_status(
        app.api(Method::POST, "/users/u1/blocks")
            .json(&json!({"actor": bob})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(outcome["followers_removed"], 1);
    assert_eq!(outcome["block_sent"], true);
    // Blocking again changes nothing.
    let outcome = expect_status(
        app.api(Method::POST, "/users/u1/blocks")
            .json(&json!({"actor": bob})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(outcome["created"], false);
    // An unknown actor is recorded; nothing can be sent to it.
    let outcome = expect_status(
        app.api(Method::POST, "/users/u1/blocks")
            .json(&json!({"actor": "https://far.example/users/zed"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(outcome["block_sent"], false);

    for (body, field) in [
        (json!({}), "actor"),
        (json!({"actor": bob, "domain": "x.example"}), "actor"),
        (json!({"actor": "ftp://x.example/u"}), "actor"),
        (json!({"actor": "https://bridge.example/users/u1"}), "actor"),
        (json!({"domain": "a/b"}), "domain"),
        (json!({"domain": "x.example:443"}), "domain"),
        (json!({"domain": "https://x.example/"}), "domain"),
        (json!({"domain": "*.x.example"}), "domain"),
        (json!({"domain": "192.0.2.1"}), "domain"),
        (json!({"domain": "bridge.example"}), "domain"),
        (json!({"domain": "x.example", "other": 1}), "other"),
    ] {
        let bad = expect_status(
            app.api(Method::POST, "/users/u1/blocks").json(&body),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(bad["field"], field, "{body}: {bad}");
    }

    let list = expect_status(app.api(Method::GET, "/users/u1/blocks"), StatusCode::OK).await;
    let targets: Vec<(&str, &str)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().expect("kind"),
                b["target"].as_str().expect("target"),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("domain", "spam.example"),
            ("actor", bob.as_str()),
            ("actor", "https://far.example/users/zed"),
        ]
    );
    let status = expect_status(app.api(Method::GET, "/users/u1/sharing"), StatusCode::OK).await;
    assert_eq!(status["followers"], 1, "only {keep} is left");

    // Every spelling of a domain is one block, stored in the form the inbox and the
    // delivery engine match hosts in (those of parsed URLs: lowercase punycode).
    expect_status(
        app.api(Method::POST, "/users/u1/blocks")
            .json(&json!({"domain": "Exämple.COM."})),
        StatusCode::CREATED,
    )
    .await;
    let again = expect_status(
        app.api(Method::POST, "/users/u1/blocks")
            .json(&json!({"domain": "xn--exmple-cua.com"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["created"], false, "{again}");
    let user_id = user.id;
    let matched = app
        .db
        .run(move |c| {
            let host = url::Url::parse("https://A.EXÄMPLE.com./users/z").expect("URL");
            let host = host.host_str().expect("host").to_owned();
            Ok((
                bridge::db::blocks::user_blocks(c, user_id, "https://a.example/u", &host)?,
                bridge::db::blocks::user_blocks(c, user_id, "https://a.example/u", "example.com")?,
            ))
        })
        .await
        .expect("read");
    assert_eq!(
        matched,
        (true, false),
        "a subdomain in any spelling is blocked"
    );
    expect_status(
        app.api(Method::DELETE, "/users/u1/blocks")
            .json(&json!({"domain": "EXÄMPLE.com"})),
        StatusCode::OK,
    )
    .await;

    expect_status(
        app.api(Method::DELETE, "/users/u1/blocks")
            .json(&json!({"actor": bob})),
        StatusCode::OK,
    )
    .await;
    let gone = expect_status(
        app.api(Method::DELETE, "/users/u1/blocks")
            .json(&json!({"actor": bob})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(gone["error"], "no_such_block");
    expect_status(
        app.api(Method::DELETE, "/users/u1/blocks")
            .json(&json!({"domain": "spam.example"})),
        StatusCode::OK,
    )
    .await;

    let sent = app.activities(&user).await;
    let kinds: Vec<(&str, &[String])> = sent
        .iter()
        .map(|a| (a.kind.as_str(), a.inboxes.as_slice()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Reject", &[format!("{carol}/inbox")][..]),
            ("Reject", &[format!("{dan}/inbox")][..]),
            ("Reject", &[format!("{erin}/inbox")][..]),
            ("Reject", &[format!("{bob}/inbox")][..]),
            ("Block", &[format!("{bob}/inbox")][..]),
            ("Undo", &[format!("{bob}/inbox")][..]),
        ]
    );
    assert_eq!(sent[4].payload["object"], bob.as_str());
    assert_eq!(sent[5].payload["object"]["type"], "Block");
    assert_eq!(sent[5].payload["object"]["id"], sent[4].payload["id"]);
    app.app.stop().await.expect("stops");
}

#[tokio::test]
async fn blocks_remove_followers_and_send_block() {
    on_both(blocks).await;
}

async fn posts(backend: Backend) {
    let Some(app) = SharingApp::start(backend, &[]).await else {
        return;
    };
    let user = app.user("u1", "alice", true).await;
    expect_status(
        app.api(Method::POST, "/users/u1/sharing")
            .json(&json!({"enabled": true, "consent": true})),
        StatusCode::OK,
    )
    .await;
    let user = app.reload(&user.platform_user_id).await;
    let bob = app.follower(&user, "one.example", "bob", true).await;
    app.post(&user, "p1", true).await;
    app.post(&user, "p2", false).await;
    let note = "https://bridge.example/posts/p1";
    app.ledger(&user, note, "fetcher.example").await;

    let refused = expect_status(
        app.api(Method::POST, "/users/u1/posts/p1/exclude"),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(refused["detail"]["state"], "federated");
    let done = expect_status(
        app.api(Method::POST, "/users/u1/posts/p1/retract"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["federation"], "retracted");
    expect_status(
        app.api(Method::POST, "/users/u1/posts/p1/retract"),
        StatusCode::OK,
    )
    .await;

    let done = expect_status(
        app.api(Method::POST, "/users/u1/posts/p2/exclude"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["federation"], "excluded");
    expect_status(
        app.api(Method::POST, "/users/u1/posts/p2/retract"),
        StatusCode::CONFLICT,
    )
    .await;
    let missing = expect_status(
        app.api(Method::POST, "/users/u1/posts/nope/exclude"),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(missing["error"], "unknown_post");
    app.user("u2", "other", true).await;
    expect_status(
        app.api(Method::POST, "/users/u2/posts/p2/exclude"),
        StatusCode::NOT_FOUND,
    )
    .await;

    let sent = app.activities(&user).await;
    let summary: Vec<(&str, Option<&str>, &[String])> = sent
        .iter()
        .map(|a| (a.kind.as_str(), a.object.as_deref(), a.inboxes.as_slice()))
        .collect();
    // Sorted, as the fixture lists them.
    let removal_inboxes = [
        "https://fetcher.example/inbox".to_owned(),
        "https://one.example/inbox".to_owned(),
    ];
    let create_inboxes = ["https://one.example/inbox".to_owned()];
    assert_eq!(
        summary,
        [
            ("Create", Some(note), &create_inboxes[..]),
            ("Delete", Some(note), &removal_inboxes[..]),
        ],
        "Create to {bob}'s server, Delete to it and to the server that fetched the post"
    );
    assert_eq!(sent[1].payload["object"]["type"], "Tombstone");
    app.app.stop().await.expect("stops");
}

#[tokio::test]
async fn posts_can_be_excluded_or_retracted() {
    on_both(posts).await;
}

async fn server_blocks(backend: Backend) {
    let Some(app) = SharingApp::start(backend, &[]).await else {
        return;
    };
    let user = app.user("u1", "alice", true).await;
    app.follower(&user, "social.spam.example", "eve", true)
        .await;
    app.follower(&user, "good.example", "bob", true).await;

    // Add, change, and refuse what is not a domain.
    let body = expect_status(
        app.api(Method::POST, "/server-blocks").json(
            &json!({"domain": "Spam.Example.", "severity": "follows_only", "comment": "ads"}),
        ),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(body["domain"], "spam.example");
    assert_eq!(body["action"], "added");
    assert_eq!(body["followers_removed"], 0, "follows_only keeps followers");
    let body = expect_status(
        app.api(Method::POST, "/server-blocks")
            .json(&json!({"domain": "spam.example"})),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (
            body["action"].clone(),
            body["from"].clone(),
            body["to"].clone()
        ),
        (json!("updated"), json!("follows_only"), json!("reject"))
    );
    assert_eq!(body["followers_removed"], 1);
    let kinds: Vec<String> = app
        .activities(&user)
        .await
        .into_iter()
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, ["Reject"]);
    for bad in ["*.spam.example", "https://spam.example/", "1.2.3.4", ""] {
        let body = expect_status(
            app.api(Method::POST, "/server-blocks")
                .json(&json!({"domain": bad})),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["field"], "domain", "{bad}: {body}");
    }

    // Import (dry run first), list, export.
    let list = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate\n\
                spam.example,silence,false,false,,false\n\
                bücher.example,suspend,false,false,Spam,false\n\
                *.wild.example,suspend,false,false,,false\n";
    let body = expect_status(
        app.api(Method::POST, "/server-blocks/import?dry_run=true")
            .body(list),
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["report"]["added"], 1);
    let body = expect_status(app.api(Method::GET, "/server-blocks"), StatusCode::OK).await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    let body = expect_status(
        app.api(Method::POST, "/server-blocks/import").body(list),
        StatusCode::OK,
    )
    .await;
    let report = &body["report"];
    assert_eq!(
        (
            report["added"].clone(),
            report["unchanged"].clone(),
            report["invalid"][0]["line"].clone()
        ),
        (json!(1), json!(1), json!(4)),
        "{body}"
    );
    assert_eq!(report["rows"][0]["action"], "kept_stricter");
    let body = expect_status(app.api(Method::GET, "/server-blocks"), StatusCode::OK).await;
    let domains: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["domain"].as_str().expect("domain"))
        .collect();
    assert_eq!(domains, ["spam.example", "xn--bcher-kva.example"]);
    let csv = app
        .api(Method::GET, "/server-blocks.csv")
        .send()
        .await
        .expect("export")
        .text()
        .await
        .expect("text");
    assert!(
        csv.contains("xn--bcher-kva.example,suspend,false,false,Spam,false"),
        "{csv}"
    );

    // Lift.
    expect_status(
        app.api(Method::DELETE, "/server-blocks")
            .json(&json!({"domain": "SPAM.example"})),
        StatusCode::OK,
    )
    .await;
    let body = expect_status(
        app.api(Method::DELETE, "/server-blocks")
            .json(&json!({"domain": "spam.example"})),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body["error"], "no_such_block");
    // Without the token, nothing.
    let status = app
        .app
        .client
        .get(format!("{}/api/v1/server-blocks", app.app.address))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn server_blocks_are_managed_through_the_api() {
    on_both(server_blocks).await;
}
