//! A minimal remote ActivityPub server for inbox tests: actor documents with keys made
//! here, fetches counted, and requests signed as its actors.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::SystemTime,
};

use actix_web::{App, HttpResponse, HttpServer, web};
use bridge::{
    Role,
    db::Database,
    federation::{SigningKey, generate_rsa_keypair},
};
use serde_json::{Value, json};
use url::Url;

use crate::{TestApp, TestDatabase, test_settings};

/// Starts a bridge (HTTP role) on `http://localhost:PORT`, the name the remote servers of
/// these tests reach it by, with `extra` settings. Returns it, its storage and its base URL.
pub async fn spawn_localhost_bridge(
    database: &TestDatabase,
    extra: &[(&str, &str)],
) -> (TestApp, Database, Url) {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let base = format!("http://localhost:{port}");
    let domain = format!("localhost:{port}");
    let mut overrides = vec![
        ("FEDIBRIDGE__SERVER__BIND", bind.as_str()),
        ("FEDIBRIDGE__FEDERATION__BASE_URL", base.as_str()),
        ("FEDIBRIDGE__FEDERATION__DOMAIN", domain.as_str()),
        ("FEDIBRIDGE__FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true"),
    ];
    overrides.extend_from_slice(extra);
    let settings = test_settings(database, &overrides);
    let db = Database::new(&settings.database).expect("database");
    let app = TestApp::spawn_roles(settings, &[Role::Http]).await;
    (app, db, Url::parse(&base).expect("base"))
}

type Documents = Arc<Mutex<HashMap<String, Option<Value>>>>;

/// A minimal remote server: actor documents by name (or 410), keys made here, fetches
/// counted.
pub struct FakeRemote {
    /// `http://localhost:PORT`.
    pub base: Url,
    documents: Documents,
    keys: Mutex<HashMap<String, SigningKey>>,
    fetches: Arc<AtomicUsize>,
    _server: actix_web::dev::ServerHandle,
}

impl FakeRemote {
    /// Serves the Persons `actors` and answers 410 for `gone`.
    pub async fn start(actors: &[&str], gone: &[&str]) -> FakeRemote {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let documents: Documents = Arc::default();
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counter) = (documents.clone(), fetches.clone());
        let server = HttpServer::new(move || {
            let (documents, fetches) = (served.clone(), counter.clone());
            App::new().route(
                "/users/{name}",
                web::get().to(move |name: web::Path<String>| {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let document = documents.lock().expect("lock").get(name.as_str()).cloned();
                    async move {
                        match document {
                            Some(Some(doc)) => HttpResponse::Ok()
                                .content_type("application/activity+json")
                                .body(doc.to_string()),
                            Some(None) => HttpResponse::Gone().finish(),
                            None => HttpResponse::NotFound().finish(),
                        }
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let remote = FakeRemote {
            base: Url::parse(&format!("http://localhost:{port}")).expect("base"),
            documents,
            keys: Mutex::default(),
            fetches,
            _server: handle,
        };
        for name in actors {
            remote.put_actor(name, json!({}));
        }
        for name in gone {
            remote.new_key(name);
            remote
                .documents
                .lock()
                .expect("lock")
                .insert((*name).to_owned(), None);
        }
        remote
    }

    /// Gives `name` a new key (not yet served); returns its public PEM.
    pub fn new_key(&self, name: &str) -> String {
        let pair = generate_rsa_keypair().expect("key");
        let key_id = Url::parse(&format!("{}#main-key", self.actor(name))).expect("key id");
        let key = SigningKey::from_pem(key_id, &pair.private_key_pem).expect("signing key");
        self.keys.lock().expect("lock").insert(name.to_owned(), key);
        pair.public_key_pem
    }

    /// Serves the Person `name` with a new key and the `extra` fields.
    pub fn put_actor(&self, name: &str, extra: Value) {
        let pem = self.new_key(name);
        let id = self.actor(name);
        let mut doc = json!({
            "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
            "id": id,
            "type": "Person",
            "preferredUsername": name,
            "inbox": format!("{id}/inbox"),
            "publicKey": {"id": format!("{id}#main-key"), "owner": id, "publicKeyPem": pem}
        });
        if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
            doc.extend(extra.clone());
        }
        self.documents
            .lock()
            .expect("lock")
            .insert(name.to_owned(), Some(doc));
    }

    /// The actor URL of `name`.
    pub fn actor(&self, name: &str) -> Url {
        self.base.join(&format!("/users/{name}")).expect("url")
    }

    /// The current signing key of `name`.
    pub fn key(&self, name: &str) -> SigningKey {
        self.keys.lock().expect("lock")[name].clone()
    }

    /// How many actor documents were fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// POSTs `activity` to `inbox` signed by `name`'s current key, dated now.
    pub async fn send(&self, inbox: &Url, name: &str, activity: Value) -> u16 {
        post_signed(inbox, inbox, &activity, &self.key(name), SystemTime::now()).await
    }

    /// Like [`FakeRemote::send`], returning the whole response.
    pub async fn send_response(
        &self,
        inbox: &Url,
        name: &str,
        activity: Value,
    ) -> reqwest::Response {
        post_signed_response(inbox, inbox, &activity, &self.key(name), SystemTime::now()).await
    }
}

/// POSTs `body` to `inbox` signed with `key` as of `date`, the `Host` header being the one
/// of `signed_url` (normally the inbox itself).
pub async fn post_signed(
    inbox: &Url,
    signed_url: &Url,
    body: &Value,
    key: &SigningKey,
    date: SystemTime,
) -> u16 {
    post_signed_response(inbox, signed_url, body, key, date)
        .await
        .status()
        .as_u16()
}

/// Like [`post_signed`], returning the whole response.
pub async fn post_signed_response(
    inbox: &Url,
    signed_url: &Url,
    body: &Value,
    key: &SigningKey,
    date: SystemTime,
) -> reqwest::Response {
    crate::signed_post::post_signed_response(
        &reqwest::Client::new(),
        inbox,
        signed_url,
        body,
        key,
        date,
    )
    .await
}
