//! The settings page over plain HTTP: signed links, the session cookie, CSRF tokens, the
//! pages each state shows; and the remote-follow page of public profiles.

use bridge::http::auth;
use integration_tests::{
    Backend,
    sharing::{SECRET, SharingApp},
};
use reqwest::{Method, StatusCode, redirect::Policy};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// Form posts without reqwest's `form` feature.
trait FormBody {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Opens the settings link and returns the session cookie (`name=value`).
async fn open(app: &SharingApp, client: &reqwest::Client, user: &str) -> String {
    let link: serde_json::Value = app
        .api(Method::POST, &format!("/users/{user}/settings-link"))
        .send()
        .await
        .expect("link")
        .json()
        .await
        .expect("JSON");
    let link = url::Url::parse(link["url"].as_str().expect("url")).expect("URL");
    let local = format!(
        "{}{}?{}",
        app.app.address,
        link.path(),
        link.query().expect("query")
    );
    let response = client.get(local).send().await.expect("open link");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/settings");
    let cookie = response.headers()["set-cookie"].to_str().expect("ascii");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/settings", "Secure"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    cookie.split(';').next().expect("pair").to_owned()
}

fn csrf_of(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..].split('"').next().expect("token").to_owned()
}

#[tokio::test]
async fn links_sessions_and_csrf_are_checked() {
    let Some(app) = SharingApp::start(Backend::Sqlite, &[]).await else {
        return;
    };
    app.user("u1", "alice", true).await;
    let client = no_redirects();
    let base = &app.app.address;

    // Forged, tampered and expired links explain what to do.
    let forged = client
        .get(format!("{base}/settings?u=u1&exp={}&sig=00ff", now() + 60))
        .send()
        .await
        .expect("request");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(
        forged
            .text()
            .await
            .expect("page")
            .contains("again from the platform")
    );
    let exp = now() + 60;
    let sig = auth::sign_link(SECRET, "u1", exp);
    let other_user = client
        .get(format!("{base}/settings?u=u2&exp={exp}&sig={sig}"))
        .send()
        .await
        .expect("request");
    assert_eq!(other_user.status(), StatusCode::FORBIDDEN);
    let past = now() - 1;
    let expired = client
        .get(format!(
            "{base}/settings?u=u1&exp={past}&sig={}",
            auth::sign_link(SECRET, "u1", past)
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
    assert!(expired.text().await.expect("page").contains("has expired"));
    let no_session = client.get(format!("{base}/settings")).send().await;
    assert_eq!(no_session.expect("request").status(), StatusCode::FORBIDDEN);

    let cookie = open(&app, &client, "u1").await;
    let page = client
        .get(format!("{base}/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await.expect("html");
    assert!(page.contains(r#"<html lang="en">"#));
    assert!(page.contains("@alice@bridge.example"));
    assert!(page.contains("Deletion elsewhere is a request, not a guarantee"));
    let csrf = csrf_of(&page);

    // A form without the right token is refused, whatever the cookie.
    for token in ["", "00", &auth::csrf_token(SECRET, "another session")] {
        let refused = client
            .post(format!("{base}/settings/on"))
            .header("cookie", &cookie)
            .form_body(&[("csrf", token), ("consent", "yes")])
            .send()
            .await
            .expect("request");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "token {token:?}");
    }
    let no_cookie = client
        .post(format!("{base}/settings/on"))
        .form_body(&[("csrf", csrf.as_str()), ("consent", "yes")])
        .send()
        .await
        .expect("request");
    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.reload("u1").await.sharing_state, "off");

    // Without consent: refused and explained, next to the checkbox.
    let refused = client
        .post(format!("{base}/settings/on"))
        .header("cookie", &cookie)
        .form_body(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let refused = refused.text().await.expect("html");
    assert!(refused.contains(r#"aria-describedby="consent-error""#));
    assert!(refused.contains("please tick the box"));

    let on = client
        .post(format!("{base}/settings/on"))
        .header("cookie", &cookie)
        .form_body(&[("csrf", csrf.as_str()), ("consent", "yes")])
        .send()
        .await
        .expect("request");
    assert_eq!(on.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.reload("u1").await.sharing_state, "on");
    let audit: serde_json::Value = app
        .api(Method::GET, "/users/u1/audit")
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("JSON");
    assert_eq!(audit["items"][0]["action"], "sharing.on");
    assert_eq!(audit["items"][0]["initiator"], "user");

    // Followers and blocks are managed from the page too.
    let user = app.reload("u1").await;
    let bob = app.follower(&user, "one.example", "bob", true).await;
    let ann = app.follower(&user, "two.example", "ann", false).await;
    let page = client
        .get(format!("{base}/settings?done=on"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Your public posts now reach the fediverse"));
    assert!(page.contains("@bob@one.example"));
    assert!(page.contains("@ann@two.example"));
    for (path, form) in [
        ("followers/approve", vec![("actor", ann.as_str())]),
        ("followers/remove", vec![("actor", bob.as_str())]),
        ("blocks", vec![("target", "spam.example")]),
    ] {
        let mut form = form;
        form.push(("csrf", csrf.as_str()));
        let done = client
            .post(format!("{base}/settings/{path}"))
            .header("cookie", &cookie)
            .form_body(&form)
            .send()
            .await
            .expect("request");
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{path}");
    }
    let status: serde_json::Value = app
        .api(Method::GET, "/users/u1/sharing")
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("JSON");
    assert_eq!(status["followers"], 1, "ann approved, bob removed");
    let bad_block = client
        .post(format!("{base}/settings/blocks"))
        .header("cookie", &cookie)
        .form_body(&[("csrf", csrf.as_str()), ("target", "not a host/")])
        .send()
        .await
        .expect("request");
    assert_eq!(bad_block.status(), StatusCode::BAD_REQUEST);
    assert!(
        bad_block
            .text()
            .await
            .expect("html")
            .contains("server name")
    );

    // Turning off needs the confirmation page's form.
    let confirm = client
        .get(format!("{base}/settings/off"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(confirm.contains("30 days"));
    assert_eq!(app.reload("u1").await.sharing_state, "on");
    let off = client
        .post(format!("{base}/settings/off"))
        .header("cookie", &cookie)
        .form_body(&[("csrf", csrf_of(&confirm).as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(off.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.reload("u1").await.sharing_state, "off");
    let page = client
        .get(format!("{base}/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Removal requested on 1 servers"), "{page}");
    assert!(page.contains("You can turn sharing on again after"));
    app.app.stop().await.expect("stops");
}

#[tokio::test]
async fn paused_users_see_why() {
    let Some(app) = SharingApp::start(Backend::Sqlite, &[]).await else {
        return;
    };
    let user = app.user("u1", "alice", true).await;
    let urls = app.urls.clone();
    let settings = app.settings.clone();
    app.db
        .write(move |c| {
            let now = bridge::db::now_millis();
            let cx = bridge::opt_in::lifecycle::Context {
                rules: &settings.sharing,
                urls: &urls,
                initiator: bridge::opt_in::Initiator::Platform,
                now,
            };
            let on = bridge::opt_in::lifecycle::turn_on(c, &user, true, cx)?.expect("on");
            let mut facts = integration_tests::sharing::profile("u1", "alice", true);
            facts.is_public = false;
            let (user, _) = bridge::db::users::upsert_profile(c, &facts, now)?;
            assert_eq!(on.platform_user_id, user.platform_user_id);
            bridge::opt_in::lifecycle::reevaluate(c, &user, cx)?;
            Ok(())
        })
        .await
        .expect("pause");
    let client = no_redirects();
    let cookie = open(&app, &client, "u1").await;
    let page = client
        .get(format!("{}/settings", app.app.address))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(page.contains(r#"data-state="paused""#));
    assert!(page.contains("resumes automatically"));
    assert!(page.contains("Your profile is private"));
    app.app.stop().await.expect("stops");
}

/// A fediverse server that answers WebFinger with a subscribe template.
async fn remote_server() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let host = address.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = serde_json::json!({
                "subject": "acct:bob@remote",
                "links": [{
                    "rel": "http://ostatus.org/schema/1.0/subscribe",
                    "template": format!("http://{host}/authorize_interaction?uri={{uri}}"),
                }],
            })
            .to_string();
            let response = if request.contains("resource=acct%3Abob%40") {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/jrd+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
            };
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (address, task)
}

#[tokio::test]
async fn remote_follow_redirects_to_the_visitors_server() {
    let Some(app) = SharingApp::start(
        Backend::Sqlite,
        &[("FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true")],
    )
    .await
    else {
        return;
    };
    let user = app.user("u1", "alice", true).await;
    let (remote, server) = remote_server().await;
    let client = no_redirects();
    let base = &app.app.address;

    let not_sharing = client
        .get(format!(
            "{base}/authorize_interaction?uri=@alice@bridge.example&acct=bob@{remote}"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(not_sharing.status(), StatusCode::NOT_FOUND);

    app.post(&user, "unused", false).await;
    app.api(Method::POST, "/users/u1/sharing")
        .json(&serde_json::json!({"enabled": true, "consent": true}))
        .send()
        .await
        .expect("turn on");
    let redirected = client
        .get(format!(
            "{base}/authorize_interaction?uri=%40alice%40bridge.example&acct=%40bob%40{remote}"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(redirected.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        redirected.headers()["location"],
        format!("http://{remote}/authorize_interaction?uri=alice%40bridge.example").as_str()
    );
    // By actor URL too.
    let by_actor = client
        .get(format!(
            "{base}/authorize_interaction?uri=https://bridge.example/users/u1&acct=bob@{remote}"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(by_actor.status(), StatusCode::SEE_OTHER);

    // An account the server does not know: explain how to search instead.
    let unknown = client
        .get(format!(
            "{base}/authorize_interaction?uri=@alice@bridge.example&acct=zed@{remote}"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(unknown.status(), StatusCode::BAD_GATEWAY);
    let page = unknown.text().await.expect("html");
    assert!(page.contains("search for <strong class=\"handle\">@alice@bridge.example</strong>"));
    let ask = client
        .get(format!(
            "{base}/authorize_interaction?uri=@alice@bridge.example"
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(ask.status(), StatusCode::OK);
    assert!(
        ask.text()
            .await
            .expect("html")
            .contains(r#"<label for="acct">"#)
    );
    server.abort();
    app.app.stop().await.expect("stops");
}
