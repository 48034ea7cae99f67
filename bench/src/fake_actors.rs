//! Remote ActivityPub actors for the inbox scenario: a server on a few loopback hosts that
//! serves each actor's document with its public key (the bridge fetches it the first time
//! the actor signs a request), and the actors' signing keys.
//!
//! RSA-2048 key generation costs about 0.2 s of CPU here, so the actors share a smaller
//! pool of key pairs: each actor still has its own key id and document (and is fetched and
//! stored on its own), only the key material repeats. Verification costs the same.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};
use bridge::federation::{SigningKey, generate_rsa_keypair};
use futures_util::future::try_join_all;
use serde_json::json;
use url::Url;

use crate::error::Error;

/// One remote actor.
#[derive(Clone)]
pub struct Actor {
    /// `http://HOST/users/aN`.
    pub id: Url,
    /// Its key (key id `…#main-key`).
    pub key: SigningKey,
}

struct Served {
    /// Documents by `authority + path`.
    documents: HashMap<String, String>,
    fetches: AtomicU64,
}

/// The running server and its actors.
pub struct FakeActors {
    /// Actor `n` is `actors[n]`, on host `n % hosts`.
    pub actors: Vec<Actor>,
    served: Arc<Served>,
    handle: ServerHandle,
}

impl FakeActors {
    /// `actors` actors on `hosts` hosts (127.0.0.2 upwards), sharing `key_pool` key pairs.
    pub async fn start(hosts: u8, actors: usize, key_pool: usize) -> Result<Self, Error> {
        let pairs = generate_keys(key_pool.max(1)).await?;
        let mut listeners = Vec::new();
        let mut authorities = Vec::new();
        for a in 0..hosts.max(1) {
            let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, a.saturating_add(2)), 0))?;
            authorities.push(listener.local_addr()?.to_string());
            listeners.push(listener);
        }
        let mut documents = HashMap::new();
        let mut list = Vec::with_capacity(actors);
        for n in 0..actors {
            let authority = &authorities[n % authorities.len()];
            let id = Url::parse(&format!("http://{authority}/users/a{n}"))
                .map_err(|e| Error::Setup(format!("actor URL: {e}")))?;
            let key_id = Url::parse(&format!("{id}#main-key"))
                .map_err(|e| Error::Setup(format!("key id: {e}")))?;
            let (private_pem, public_pem) = &pairs[n % pairs.len()];
            let document = json!({
                "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
                "id": id,
                "type": "Person",
                "preferredUsername": format!("a{n}"),
                "inbox": format!("{id}/inbox"),
                "endpoints": {"sharedInbox": format!("http://{authority}/inbox")},
                "publicKey": {"id": key_id, "owner": id, "publicKeyPem": public_pem},
            });
            documents.insert(format!("{authority}/users/a{n}"), document.to_string());
            list.push(Actor {
                key: SigningKey::from_pem(key_id, private_pem)?,
                id,
            });
        }
        let served = Arc::new(Served {
            documents,
            fetches: AtomicU64::new(0),
        });
        let data = web::Data::new(Arc::clone(&served));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(serve))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0);
        for listener in listeners {
            server = server.listen(listener)?;
        }
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            actors: list,
            served,
            handle,
        })
    }

    /// Actor documents fetched so far.
    pub fn fetches(&self) -> u64 {
        self.served.fetches.load(Ordering::Relaxed)
    }

    /// Stops the server.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// `(private PEM, public PEM)` pairs, generated on the blocking pool in parallel.
async fn generate_keys(count: usize) -> Result<Vec<(String, String)>, Error> {
    let tasks = (0..count).map(|_| async {
        let pair = tokio::task::spawn_blocking(generate_rsa_keypair)
            .await
            .map_err(|e| Error::Setup(format!("key generation: {e}")))??;
        Ok::<_, Error>((pair.private_key_pem, pair.public_key_pem))
    });
    try_join_all(tasks).await
}

async fn serve(request: HttpRequest, served: web::Data<Arc<Served>>) -> HttpResponse {
    if request.method() == actix_web::http::Method::POST {
        // Deliveries to the actors (Accepts of their follows), if a delivery role runs.
        return HttpResponse::Accepted().finish();
    }
    let key = format!("{}{}", request.app_config().local_addr(), request.path());
    match served.documents.get(&key) {
        Some(document) => {
            served.fetches.fetch_add(1, Ordering::Relaxed);
            HttpResponse::Ok()
                .content_type("application/activity+json")
                .body(document.clone())
        }
        None => HttpResponse::NotFound().finish(),
    }
}
