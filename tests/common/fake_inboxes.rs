//! A remote host on `http://127.0.0.1:PORT` whose every path is an inbox: it answers 202
//! after a fixed delay and counts what it received per (inbox path, activity id).

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};

/// (inbox path, activity id) → times received.
pub type Received = HashMap<(String, String), u32>;

/// The running host.
pub struct CountingInboxes {
    port: u16,
    received: Arc<Mutex<Received>>,
    server: ServerHandle,
}

impl CountingInboxes {
    /// Starts a host that answers every POST with 202 after `delay`.
    pub async fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Received::new()));
        let counts = Arc::clone(&received);
        let server = HttpServer::new(move || {
            let counts = Arc::clone(&counts);
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let id = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                *counts
                    .lock()
                    .expect("lock")
                    .entry((req.path().to_owned(), id))
                    .or_default() += 1;
                async move {
                    tokio::time::sleep(delay).await;
                    HttpResponse::Accepted().finish()
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            port,
            received,
            server: handle,
        }
    }

    /// `127.0.0.1:PORT`, the host as deliveries record it.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The URL of `path` on this host.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What arrived so far.
    pub fn received(&self) -> Received {
        self.received.lock().expect("lock").clone()
    }

    /// Requests received so far.
    pub fn total(&self) -> u32 {
        self.received.lock().expect("lock").values().sum()
    }

    /// Stops the host.
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}
