//! A remote server on `http://localhost:PORT` with any number of Persons that share one
//! RSA key (each under its own key id): many distinct signers for inbox bursts without
//! generating a key per actor.

use std::{net::TcpListener, time::SystemTime};

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
use bridge::federation::{SigningKey, generate_rsa_keypair};
use serde_json::{Value, json};
use url::Url;

use crate::signed_post::post_signed;

/// The running server.
pub struct FakeActors {
    base: Url,
    private_key_pem: String,
    client: reqwest::Client,
    server: ServerHandle,
}

impl FakeActors {
    /// Starts the server; every `/users/{name}` is a Person.
    pub async fn start() -> Self {
        let pair = generate_rsa_keypair().expect("RSA key");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let base = Url::parse(&format!("http://localhost:{port}")).expect("base URL");
        let (served_base, public_pem) = (base.clone(), pair.public_key_pem.clone());
        let server = HttpServer::new(move || {
            let (base, pem) = (served_base.clone(), public_pem.clone());
            App::new().route(
                "/users/{name}",
                web::get().to(move |name: web::Path<String>| {
                    let document = person(&base, &name, &pem);
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/activity+json")
                            .body(document.to_string())
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base,
            private_key_pem: pair.private_key_pem,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
            server: handle,
        }
    }

    /// The Person `name`'s id.
    pub fn actor(&self, name: &str) -> Url {
        actor_id(&self.base, name)
    }

    /// POSTs `activity` to `inbox`, signed now by `name`'s key; returns the status.
    pub async fn post(&self, inbox: &Url, name: &str, activity: &Value) -> u16 {
        let key_id = Url::parse(&format!("{}#main-key", self.actor(name))).expect("key id");
        let key = SigningKey::from_pem(key_id, &self.private_key_pem).expect("signing key");
        post_signed(
            &self.client,
            inbox,
            inbox,
            activity,
            &key,
            SystemTime::now(),
        )
        .await
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.server.stop(false).await;
    }
}

fn actor_id(base: &Url, name: &str) -> Url {
    base.join(&format!("/users/{name}")).expect("actor URL")
}

fn person(base: &Url, name: &str, public_key_pem: &str) -> Value {
    let id = actor_id(base, name);
    json!({
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": id,
        "type": "Person",
        "preferredUsername": name,
        "inbox": format!("{id}/inbox"),
        "publicKey": {"id": format!("{id}#main-key"), "owner": id, "publicKeyPem": public_key_pem}
    })
}
