//! Probes and metrics of a running bridge, on both storage backends.

use integration_tests::{
    Backend, TestApp, TestDatabase, amqp_url, service_available, test_settings,
};
use serde_json::Value;

async fn probes_answer(backend: Backend) {
    let Some(db) = TestDatabase::new(backend) else {
        return;
    };
    let app = TestApp::spawn(test_settings(&db, &[])).await;

    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["broker"], "not configured");

    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains(
            r#"fedibridge_http_requests_total{method="GET",route="/readyz",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("fedibridge_db_pool_connections"), "{text}");
    assert!(text.contains("fedibridge_build_info"), "{text}");

    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn probes_answer_on_sqlite() {
    probes_answer(Backend::Sqlite).await;
}

#[tokio::test]
async fn probes_answer_on_postgres() {
    probes_answer(Backend::Postgres).await;
}

#[tokio::test]
async fn readyz_fails_when_the_database_goes_away() {
    let Some(db) = TestDatabase::new(Backend::Postgres) else {
        return;
    };
    let app = TestApp::spawn(test_settings(&db, &[])).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    db.drop_postgres_now();

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["status"], "not ready");
    let database = body["checks"]["database"].as_str().expect("string");
    assert!(database.starts_with("error"), "{database}");
    // Liveness is about the process, not its dependencies.
    assert_eq!(app.get("/healthz").await.status(), 200);
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn readyz_follows_the_broker() {
    let broker_up = platform_adapter::connection::probe(&amqp_url())
        .await
        .is_ok();
    if !service_available("RabbitMQ", broker_up) {
        return;
    }
    let db = TestDatabase::sqlite();
    let url = amqp_url();
    let app = TestApp::spawn(test_settings(
        &db,
        &[("FEDIBRIDGE__BROKER__URL", url.as_str())],
    ))
    .await;
    let mut body = Value::Null;
    for _ in 0..50 {
        body = app.get("/readyz").await.json().await.expect("JSON");
        if body["checks"]["broker"] == "ok" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(body["checks"]["broker"], "ok", "{body}");
    assert_eq!(body["status"], "ready");
    app.stop().await.expect("clean stop");

    // Nothing listens on port 1: configured but unreachable means not ready.
    let db = TestDatabase::sqlite();
    let app = TestApp::spawn(test_settings(
        &db,
        &[(
            "FEDIBRIDGE__BROKER__URL",
            "amqp://guest:guest@127.0.0.1:1/%2f",
        )],
    ))
    .await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("JSON");
    assert_eq!(body["checks"]["broker"], "disconnected", "{body}");
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_stops_serving_and_returns() {
    let db = TestDatabase::sqlite();
    let app = TestApp::spawn(test_settings(&db, &[])).await;
    let address = app.address.clone();
    app.stop().await.expect("clean stop");
    let after = reqwest::Client::new()
        .get(format!("{address}/healthz"))
        .send()
        .await;
    assert!(after.is_err(), "the listener is closed after shutdown");
}
