//! Shared fixtures for the black-box tests: throw-away databases and a running bridge.
//!
//! PostgreSQL and RabbitMQ are real services on this machine. When one is missing a test
//! that needs it is skipped with a message, except under `CI=true`, where it fails: CI must
//! never pass by skipping.

pub mod broker;
pub mod disposable;
pub mod fake_actors;
pub mod fake_inboxes;
pub mod peer;
pub mod remote;
pub mod sharing;
pub mod signed_post;

pub mod events;

use std::{collections::HashMap, time::Duration};

use bridge::{Application, Role, Settings};
use diesel::{Connection, PgConnection, RunQueryDsl};
use tokio_util::sync::CancellationToken;

/// Administrative PostgreSQL URL used to create and drop per-test databases.
pub fn postgres_admin_url() -> String {
    std::env::var("FEDIBRIDGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// AMQP URL of the test broker.
pub fn amqp_url() -> String {
    std::env::var("FEDIBRIDGE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Whether missing services must fail the run instead of skipping.
pub fn services_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns `true` when `service` can be used; otherwise skips (locally) or panics (CI).
pub fn service_available(service: &str, reachable: bool) -> bool {
    if reachable {
        return true;
    }
    assert!(
        !services_required(),
        "{service} is required under CI=true but is not reachable"
    );
    eprintln!("SKIPPED: {service} is not reachable (set CI=true to make this a failure)");
    false
}

/// A database of its own for one test, removed when dropped.
pub struct TestDatabase {
    /// URL to put in `database.url`.
    pub url: String,
    /// Name of the PostgreSQL database, if this is one.
    pub postgres_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded default.
    Sqlite,
    /// Production backend.
    Postgres,
}

impl TestDatabase {
    /// A fresh database on `backend`, or `None` when PostgreSQL is missing outside CI.
    pub fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => Self::postgres(),
        }
    }

    /// A database that something else created and removes (a disposable server's).
    pub fn at(url: String) -> Self {
        Self {
            url,
            postgres_name: None,
            _dir: None,
        }
    }

    /// A SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("bridge.db").display());
        Self {
            url,
            postgres_name: None,
            _dir: Some(dir),
        }
    }

    /// A new, empty PostgreSQL database.
    pub fn postgres() -> Option<Self> {
        let admin = postgres_admin_url();
        let conn = PgConnection::establish(&admin);
        if !service_available("PostgreSQL", conn.is_ok()) {
            return None;
        }
        let mut conn = conn.expect("checked above");
        let name = format!("fedibridge_t_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .expect("create test database");
        let mut url = url::Url::parse(&admin).expect("admin URL");
        url.set_path(&name);
        Some(Self {
            url: url.to_string(),
            postgres_name: Some(name),
            _dir: None,
        })
    }

    /// Drops a PostgreSQL database now, cutting its connections (simulates losing it).
    pub fn drop_postgres_now(&self) {
        if let Some(name) = &self.postgres_name {
            let mut conn =
                PgConnection::establish(&postgres_admin_url()).expect("admin connection");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .expect("drop test database");
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.postgres_name.is_some()
            && let Ok(mut conn) = PgConnection::establish(&postgres_admin_url())
            && let Some(name) = &self.postgres_name
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        }
    }
}

/// Settings for a test app on `db`, bound to a random port, with `overrides` applied as
/// `FEDIBRIDGE__…` variables.
pub fn test_settings(db: &TestDatabase, overrides: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("FEDIBRIDGE__SERVER__BIND".into(), "127.0.0.1:0".into()),
        ("FEDIBRIDGE__SERVER__WORKERS".into(), "2".into()),
        (
            "FEDIBRIDGE__SERVER__SHUTDOWN_TIMEOUT_SECS".into(),
            "5".into(),
        ),
        ("FEDIBRIDGE__DATABASE__URL".into(), db.url.clone()),
        (
            "FEDIBRIDGE__DATABASE__CONNECT_TIMEOUT_SECS".into(),
            "2".into(),
        ),
        ("FEDIBRIDGE__LOG__LEVEL".into(), "warn".into()),
        ("FEDIBRIDGE__PLATFORM__API_TOKEN".into(), API_TOKEN.into()),
    ]);
    for (key, value) in overrides {
        env.insert((*key).to_owned(), (*value).to_owned());
    }
    Settings::load_with_env(None, Some(env)).expect("test settings are valid")
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts every role on `db` as `http://localhost:PORT`, loopback fetches allowed, as the
/// tests against the peer need (it only talks to DNS host names); returns the app and its
/// base URL.
pub async fn spawn_on_localhost(db: &TestDatabase) -> (TestApp, String) {
    let port = free_port();
    let (bind, base, domain) = (
        format!("127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("localhost:{port}"),
    );
    let app = TestApp::spawn(test_settings(
        db,
        &[
            ("FEDIBRIDGE__SERVER__BIND", bind.as_str()),
            ("FEDIBRIDGE__FEDERATION__BASE_URL", base.as_str()),
            ("FEDIBRIDGE__FEDERATION__DOMAIN", domain.as_str()),
            ("FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true"),
        ],
    ))
    .await;
    (app, base)
}

/// A bridge running in this test process.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    /// Stops the app when cancelled.
    pub shutdown: CancellationToken,
    /// The app's task; resolves when it has stopped.
    pub task: tokio::task::JoinHandle<Result<(), bridge::Error>>,
    /// HTTP client for requests to the app.
    pub client: reqwest::Client,
    /// The app's database, for assertions and set-up.
    pub db: bridge::db::Database,
    /// The app's URL scheme.
    pub urls: bridge::federation::urls::Urls,
}

/// The bearer token `test_settings_with_api` configures.
pub const API_TOKEN: &str = "test-platform-token";

impl TestApp {
    /// Starts every role with `settings`.
    pub async fn spawn(settings: Settings) -> Self {
        Self::spawn_roles(settings, &Role::ALL).await
    }

    /// Starts the given roles with `settings`.
    pub async fn spawn_roles(settings: Settings, roles: &[Role]) -> Self {
        bridge::telemetry::init_tracing(&settings.log);
        let app = Application::build(settings, roles)
            .await
            .expect("application builds");
        let port = app.port().expect("HTTP role enabled");
        let shutdown = app.shutdown_token();
        let db = app.state().db.clone();
        let urls = app.state().urls.clone();
        let task = tokio::spawn(app.run_until_stopped());
        Self {
            address: format!("http://127.0.0.1:{port}"),
            shutdown,
            task,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            db,
            urls,
        }
    }

    /// GET `path` asking for ActivityStreams JSON.
    pub async fn ap_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .header("Accept", "application/activity+json")
            .send()
            .await
            .expect("request reaches the app")
    }

    /// POSTs one platform event to the HTTP ingest endpoint with the test token.
    pub async fn send_event(&self, event: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/events", self.address))
            .bearer_auth(API_TOKEN)
            .json(event)
            .send()
            .await
            .expect("request reaches the app")
    }

    /// GET `path` on the app.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request reaches the app")
    }

    /// Stops the app and waits for it.
    pub async fn stop(self) -> Result<(), bridge::Error> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("app stops within its grace period")
            .expect("app task did not panic")
    }
}
