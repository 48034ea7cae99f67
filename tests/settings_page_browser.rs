//! The settings page in a real headless Chromium, driven through chromedriver: onboarding,
//! a refused turn-on without consent, turning on, the turn-off confirmation and the removal
//! receipt. Screenshots go to `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the test is skipped locally and fails under `CI=true`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use integration_tests::{
    Backend, service_available,
    sharing::{SharingApp, TOKEN},
};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

async fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port}");
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--window-size=1000,1400",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::native()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(name), png).expect("write screenshot");
}

async fn text(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn a_person_turns_sharing_on_and_off_in_chromium() {
    let installed = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !service_available("Chromium and chromedriver", installed) {
        return;
    }
    // http on localhost: the session cookie is not `Secure`, as a browser on plain HTTP
    // would not send it back.
    let Some(app) = SharingApp::start(
        Backend::Sqlite,
        &[
            ("FEDIBRIDGE__FEDERATION__BASE_URL", "http://localhost"),
            ("FEDIBRIDGE__FEDERATION__DOMAIN", "bridge.example"),
        ],
    )
    .await
    else {
        return;
    };
    app.user("u1", "alice", true).await;
    let link: serde_json::Value = app
        .app
        .client
        .post(format!("{}/api/v1/users/u1/settings-link", app.app.address))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("link")
        .json()
        .await
        .expect("JSON");
    let link = url::Url::parse(link["url"].as_str().expect("url")).expect("URL");
    let link = format!(
        "{}{}?{}",
        app.app.address,
        link.path(),
        link.query().expect("query")
    );

    let driver = start_driver().await;
    let profile = tempfile::tempdir().expect("profile directory");
    let client = browser(&driver, profile.path()).await;
    let outcome = async {
        client.goto(&link).await.expect("open the link");
        // The signature leaves the address bar.
        let current = client.current_url().await.expect("URL");
        assert_eq!(current.path(), "/settings");
        assert_eq!(current.query(), None);
        let explanation = text(&client, "#explanation").await;
        assert!(explanation.contains("Deletion elsewhere is a request, not a guarantee"));
        assert!(explanation.contains("Other servers have their own rules"));
        assert!(explanation.contains("reshare"));
        assert!(explanation.contains("Only public posts you make while sharing is on"));
        assert_eq!(text(&client, "#handle").await, "@alice@bridge.example");
        assert_eq!(text(&client, "#state").await, "Sharing is off.");
        shot(&client, "settings-onboarding.png").await;

        // Without consent: refused, and the page says why, next to the checkbox.
        client
            .find(Locator::Css("#turn-on"))
            .await
            .expect("turn on button")
            .click()
            .await
            .expect("click");
        let error = text(&client, "#consent-error").await;
        assert!(error.contains("please tick the box"), "{error}");
        assert_eq!(app.reload("u1").await.sharing_state, "off");
        shot(&client, "settings-consent-refused.png").await;

        // The label toggles the checkbox, as it must for people who cannot aim at a box.
        client
            .find(Locator::Css("label[for=consent]"))
            .await
            .expect("label")
            .click()
            .await
            .expect("tick");
        assert!(
            client
                .find(Locator::Css("#consent"))
                .await
                .expect("checkbox")
                .is_selected()
                .await
                .expect("state")
        );
        client
            .find(Locator::Css("#turn-on"))
            .await
            .expect("turn on button")
            .click()
            .await
            .expect("click");
        // Waiting for an element of the next page, not the old one still on screen.
        assert_eq!(
            text(&client, "#state[data-state=on]").await,
            "Sharing is on."
        );
        assert_eq!(text(&client, "#handle").await, "@alice@bridge.example");
        assert!(
            text(&client, "[role=status]")
                .await
                .contains("now reach the fediverse")
        );
        assert_eq!(app.reload("u1").await.sharing_state, "on");

        let user = app.reload("u1").await;
        app.follower(&user, "one.example", "bob", true).await;
        client.refresh().await.expect("reload");
        assert!(
            text(&client, "#followers")
                .await
                .contains("@bob@one.example")
        );
        shot(&client, "settings-on.png").await;

        client
            .find(Locator::Css("#turn-off-link"))
            .await
            .expect("turn off link")
            .click()
            .await
            .expect("click");
        let consequences = text(&client, "#consequences").await;
        assert!(consequences.contains("30 days"), "{consequences}");
        assert!(consequences.contains("followers will be removed"));
        // Opening the confirmation changes nothing.
        assert_eq!(app.reload("u1").await.sharing_state, "on");
        shot(&client, "settings-confirm-off.png").await;
        client
            .find(Locator::Css("#confirm-off"))
            .await
            .expect("confirm button")
            .click()
            .await
            .expect("click");
        let receipt = text(&client, "#receipt").await;
        assert!(
            receipt.contains(
                "Removal requested on 1 servers, acknowledged by 0, 0 unreachable, 1 pending."
            ),
            "{receipt}"
        );
        assert!(receipt.contains("You can turn sharing on again after"));
        assert_eq!(text(&client, "#state").await, "Sharing is off.");
        assert_eq!(app.reload("u1").await.sharing_state, "off");
        shot(&client, "settings-receipt.png").await;
    };
    // The browser session is closed even when an assertion fails.
    let result = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    let _ = client.close().await;
    drop(driver);
    app.app.stop().await.expect("stops");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
