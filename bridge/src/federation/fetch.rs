//! Fetching remote actors, keys and objects on behalf of one inbound request.
//!
//! Every fetch is signed by the instance actor (servers in secure mode refuse unsigned
//! GETs), goes through the SSRF-safe [`FederationClient`], and is refused unless the
//! document's `id` is the URL it came from. A [`Fetcher`] carries a budget, so one inbound
//! request cannot set off more than a few outbound ones, and shares [`FetchFailures`], so a
//! flood of activities naming a bad key costs one fetch, not one per activity.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use super::{
    address_policy::canonical_host,
    client::{FederationClient, Fetched, ensure_id_matches},
    keys::SigningKey,
    remote_failure::RemoteFailure,
    urls::Urls,
};
use crate::{
    db::{
        Database, keys, now_millis,
        remote_actors::{self, RemoteActor, RemoteActorInput},
    },
    error::Error,
};

/// Remote fetches one inbound request may make (key, its owner, one object).
pub const DEFAULT_FETCH_BUDGET: u32 = 3;

/// How long a failed fetch is remembered.
const FAILURE_TTL: Duration = Duration::from_secs(300);

/// How many failed URLs are remembered at most.
const FAILURE_CAPACITY: usize = 10_000;

/// Longest string field of an actor we store (names, handles, URLs).
const MAX_FIELD_CHARS: usize = 2048;

/// Failed fetches, remembered for a few minutes so that repeating them costs nothing.
/// Bounded and expiring, so that an attacker inventing URLs cannot grow it without limit.
pub struct FetchFailures {
    entries: Mutex<LruCache<String, (Instant, RemoteFailure)>>,
    ttl: Duration,
}

impl Default for FetchFailures {
    fn default() -> Self {
        Self::new(
            NonZeroUsize::new(FAILURE_CAPACITY).unwrap_or(NonZeroUsize::MIN),
            FAILURE_TTL,
        )
    }
}

impl std::fmt::Debug for FetchFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchFailures")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl FetchFailures {
    /// A cache of at most `capacity` URLs, each remembered for `ttl`.
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, (Instant, RemoteFailure)>> {
        // A panic while holding the lock cannot leave the cache inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The failure of a fetch of `url` in the last few minutes, if any.
    pub fn recent(&self, url: &Url) -> Option<RemoteFailure> {
        let mut entries = self.lock();
        match entries.get(url.as_str()) {
            Some((at, failure)) if at.elapsed() < self.ttl => Some(failure.clone()),
            Some(_) => {
                entries.pop(url.as_str());
                None
            }
            None => None,
        }
    }

    /// Remembers that fetching `url` failed.
    pub fn record(&self, url: &Url, failure: RemoteFailure) {
        self.lock()
            .put(url.as_str().to_owned(), (Instant::now(), failure));
    }
}

/// What is left of one request's fetch budget.
#[derive(Debug)]
pub struct FetchBudget {
    limit: u32,
    used: AtomicU32,
}

impl FetchBudget {
    /// A budget of `limit` fetches.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            used: AtomicU32::new(0),
        }
    }

    /// Spends one fetch, or fails when none is left.
    pub fn take(&self) -> Result<(), Error> {
        let used = self.used.fetch_add(1, Ordering::Relaxed);
        if used < self.limit {
            Ok(())
        } else {
            Err(Error::FetchBudgetExhausted(self.limit))
        }
    }

    /// Fetches made so far (including refused attempts beyond the limit).
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }
}

/// One public key listed by an actor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyDocument {
    /// Key id (`…#main-key`).
    pub id: String,
    /// The actor it belongs to.
    pub owner: String,
    /// SPKI PEM.
    pub public_key_pem: String,
}

/// A remote actor document, checked and reduced to what the bridge keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorDocument {
    /// The actor's id.
    pub id: Url,
    /// What to store (its key fields set to the first key listed).
    pub input: RemoteActorInput,
    /// Every key it lists.
    pub keys: Vec<PublicKeyDocument>,
    /// `alsoKnownAs`.
    pub also_known_as: Vec<Url>,
}

impl ActorDocument {
    /// The listed key with id `key_id`, owned by this actor.
    pub fn key(&self, key_id: &str) -> Option<&PublicKeyDocument> {
        self.keys
            .iter()
            .find(|k| k.id == key_id && k.owner == self.id.as_str())
    }

    /// The values to store, with `key` as the actor's key.
    pub fn input_with_key(&self, key: Option<&PublicKeyDocument>) -> RemoteActorInput {
        let mut input = self.input.clone();
        input.public_key_id = key.map(|k| k.id.clone());
        input.public_key_pem = key.map(|k| k.public_key_pem.clone());
        input
    }
}

/// Actor types Mastodon-compatible servers publish.
const ACTOR_TYPES: [&str; 5] = ["Person", "Service", "Application", "Group", "Organization"];

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActorJson {
    id: Url,
    #[serde(rename = "type")]
    kind: String,
    preferred_username: Option<String>,
    name: Option<String>,
    url: Option<Value>,
    icon: Option<Value>,
    inbox: Url,
    endpoints: Option<EndpointsJson>,
    public_key: Option<OneOrMany<PublicKeyDocument>>,
    moved_to: Option<Url>,
    also_known_as: Option<OneOrMany<Url>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointsJson {
    shared_inbox: Option<Url>,
}

/// The first http(s) URL in a `url`/`icon` value: a string, a Link or Image object, or a
/// list of them.
pub fn first_url(value: &Value) -> Option<Url> {
    match value {
        Value::String(s) => Url::parse(s)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https")),
        Value::Object(map) => map
            .get("href")
            .or_else(|| map.get("url"))
            .and_then(first_url),
        Value::Array(items) => items.iter().take(8).find_map(first_url),
        _ => None,
    }
}

fn bounded(value: Option<String>) -> Option<String> {
    value.map(|v| v.chars().take(MAX_FIELD_CHARS).collect())
}

fn invalid(url: &Url, reason: impl Into<String>) -> Error {
    Error::Remote {
        url: url.to_string(),
        failure: RemoteFailure::InvalidJson(reason.into()),
    }
}

/// Reads an actor document served from `fetched_from` (its `id` already checked).
pub fn parse_actor(json: &Value, fetched_from: &Url) -> Result<ActorDocument, Error> {
    let actor: ActorJson = serde_json::from_value(json.clone())
        .map_err(|e| invalid(fetched_from, format!("not an actor: {e}")))?;
    if !ACTOR_TYPES.contains(&actor.kind.as_str()) {
        return Err(invalid(
            fetched_from,
            format!("`{}` is not an actor type", actor.kind),
        ));
    }
    for url in [Some(&actor.id), Some(&actor.inbox)]
        .into_iter()
        .flatten()
        .chain(
            actor
                .endpoints
                .as_ref()
                .and_then(|e| e.shared_inbox.as_ref()),
        )
    {
        if !matches!(url.scheme(), "http" | "https") || url.as_str().len() > MAX_FIELD_CHARS {
            return Err(invalid(fetched_from, format!("unusable URL {url}")));
        }
    }
    // What we send this actor goes to its inboxes. On another origin, an actor could have
    // us post its followers' content, signed by our users, to any third party; on ours, to
    // ourselves. The id is never ours (our origin is never fetched, the inbox refuses our
    // ids), so its own origin rules out both.
    let shared_inbox = actor
        .endpoints
        .as_ref()
        .and_then(|e| e.shared_inbox.as_ref());
    for inbox in std::iter::once(&actor.inbox).chain(shared_inbox) {
        if inbox.origin() != actor.id.origin() {
            return Err(invalid(
                fetched_from,
                format!("the inbox {inbox} is not on the actor's origin"),
            ));
        }
    }
    let keys = actor
        .public_key
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    let first_key = keys.iter().find(|k| k.owner == actor.id.as_str()).cloned();
    let input = RemoteActorInput {
        ap_id: actor.id.to_string(),
        host: canonical_host(&actor.id),
        kind: actor.kind,
        preferred_username: bounded(actor.preferred_username),
        name: bounded(actor.name),
        url: actor
            .url
            .as_ref()
            .and_then(first_url)
            .map(|u| u.to_string()),
        icon_url: actor
            .icon
            .as_ref()
            .and_then(first_url)
            .map(|u| u.to_string()),
        inbox: actor.inbox.to_string(),
        shared_inbox: actor
            .endpoints
            .and_then(|e| e.shared_inbox)
            .map(|u| u.to_string()),
        public_key_id: first_key.as_ref().map(|k| k.id.clone()),
        public_key_pem: first_key.map(|k| k.public_key_pem),
        moved_to: actor.moved_to.map(|u| u.to_string()),
    };
    Ok(ActorDocument {
        id: actor.id,
        input,
        keys,
        also_known_as: actor
            .also_known_as
            .map(OneOrMany::into_vec)
            .unwrap_or_default(),
    })
}

/// A standalone key document (GoToSocial-style `…/main-key`) rather than an actor.
fn as_key_document(json: &Value) -> Option<PublicKeyDocument> {
    if json.get("inbox").is_some() {
        return None;
    }
    serde_json::from_value(json.clone()).ok()
}

fn without_fragment(url: &Url) -> Url {
    let mut url = url.clone();
    url.set_fragment(None);
    url
}

/// Remote fetching for one inbound request.
pub struct Fetcher<'a> {
    client: &'a FederationClient,
    db: &'a Database,
    urls: &'a Urls,
    failures: &'a FetchFailures,
    budget: FetchBudget,
    signer: OnceCell<SigningKey>,
}

impl<'a> Fetcher<'a> {
    /// A fetcher allowed `budget` fetches.
    pub fn new(
        client: &'a FederationClient,
        db: &'a Database,
        urls: &'a Urls,
        failures: &'a FetchFailures,
        budget: u32,
    ) -> Self {
        Self {
            client,
            db,
            urls,
            failures,
            budget: FetchBudget::new(budget),
            signer: OnceCell::new(),
        }
    }

    /// Fetches made so far.
    pub fn fetches_used(&self) -> u32 {
        self.budget.used()
    }

    async fn signer(&self) -> Result<&SigningKey, Error> {
        self.signer
            .get_or_try_init(|| async {
                let key = self
                    .db
                    .run(|c| keys::active(c, None))
                    .await?
                    .ok_or_else(|| Error::Key("the instance actor has no key".into()))?;
                SigningKey::from_pem(self.urls.instance_key_id(), &key.private_key_pem)
            })
            .await
    }

    /// Fetches the document at `url` (fragment dropped), signed, requiring its `id` to be
    /// the URL it was served from. Failures are remembered; a remembered failure is
    /// returned without fetching.
    pub async fn fetch(&self, url: &Url) -> Result<Fetched, Error> {
        let url = without_fragment(url);
        if self.urls.is_local(&url) {
            return Err(Error::Remote {
                url: url.to_string(),
                failure: RemoteFailure::Forbidden("our own origin is never fetched".into()),
            });
        }
        if let Some(failure) = self.failures.recent(&url) {
            return Err(Error::Remote {
                url: url.to_string(),
                failure,
            });
        }
        self.budget.take()?;
        let signer = self.signer().await?;
        let result = self
            .client
            .fetch_activity_json(&url, Some(signer))
            .await
            .and_then(|fetched| ensure_id_matches(&fetched).map(|()| fetched));
        if let Err(Error::Remote { failure, .. }) = &result {
            self.failures.record(&url, failure.clone());
        }
        result
    }

    /// Resolves the key `key_id` to its owner: fetches the key id (an actor document, or a
    /// key document whose owner is then fetched), requires the actor to list the key as its
    /// own and to be on the key's origin, and stores the actor with that key.
    pub async fn actor_for_key(&self, key_id: &Url) -> Result<RemoteActor, Error> {
        let fetched = self.fetch(key_id).await?;
        let actor_doc = match as_key_document(&fetched.json) {
            Some(key) => {
                let owner = Url::parse(&key.owner)
                    .map_err(|_| invalid(key_id, "the key's owner is not a URL"))?;
                if owner.origin() != key_id.origin() {
                    return Err(self.refuse(key_id, "the key's owner is on another origin"));
                }
                self.fetch(&owner).await?
            }
            None => fetched,
        };
        let doc = parse_actor(&actor_doc.json, &actor_doc.final_url)
            .inspect_err(|e| self.remember(key_id, e))?;
        if doc.id.origin() != key_id.origin() {
            return Err(self.refuse(key_id, "the key's actor is on another origin"));
        }
        let Some(key) = doc.key(key_id.as_str()) else {
            return Err(self.refuse(key_id, "the actor does not list this key as its own"));
        };
        let input = doc.input_with_key(Some(key));
        self.store(input).await
    }

    /// Fetches the actor `actor_id` and stores it (its first own key as its key).
    pub async fn refresh_actor(&self, actor_id: &Url) -> Result<ActorDocument, Error> {
        let fetched = self.fetch(actor_id).await?;
        let doc = parse_actor(&fetched.json, &fetched.final_url)
            .inspect_err(|e| self.remember(actor_id, e))?;
        self.store(doc.input.clone()).await?;
        Ok(doc)
    }

    /// Stores an actor document's values.
    pub async fn store(&self, input: RemoteActorInput) -> Result<RemoteActor, Error> {
        self.db
            .write(move |c| remote_actors::upsert(c, &input, now_millis()))
            .await
    }

    fn refuse(&self, url: &Url, reason: &str) -> Error {
        let error = invalid(url, reason);
        self.remember(url, &error);
        error
    }

    fn remember(&self, url: &Url, error: &Error) {
        if let Error::Remote { failure, .. } = error {
            self.failures
                .record(&without_fragment(url), failure.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn an_actor_document_is_reduced_to_what_is_stored() {
        let json = json!({
            "id": "https://remote.example/users/bob",
            "type": "Person",
            "preferredUsername": "bob",
            "name": "Bob",
            "url": "https://remote.example/@bob",
            "icon": {"type": "Image", "url": "https://remote.example/a.png"},
            "inbox": "https://remote.example/users/bob/inbox",
            "endpoints": {"sharedInbox": "https://remote.example/inbox"},
            "publicKey": {
                "id": "https://remote.example/users/bob#main-key",
                "owner": "https://remote.example/users/bob",
                "publicKeyPem": "PEM"
            },
            "alsoKnownAs": ["https://old.example/users/bob"]
        });
        let doc = parse_actor(&json, &url("https://remote.example/users/bob")).expect("actor");
        assert_eq!(doc.input.host, "remote.example");
        assert_eq!(
            doc.input.icon_url.as_deref(),
            Some("https://remote.example/a.png")
        );
        assert_eq!(
            doc.input.shared_inbox.as_deref(),
            Some("https://remote.example/inbox")
        );
        assert!(
            doc.key("https://remote.example/users/bob#main-key")
                .is_some()
        );
        assert!(
            doc.key("https://remote.example/users/eve#main-key")
                .is_none()
        );
        assert_eq!(
            doc.also_known_as,
            vec![url("https://old.example/users/bob")]
        );
    }

    #[test]
    fn a_key_owned_by_someone_else_is_not_the_actors() {
        let json = json!({
            "id": "https://remote.example/users/bob",
            "type": "Person",
            "inbox": "https://remote.example/users/bob/inbox",
            "publicKey": [{
                "id": "https://remote.example/users/bob#main-key",
                "owner": "https://remote.example/users/eve",
                "publicKeyPem": "PEM"
            }]
        });
        let doc = parse_actor(&json, &url("https://remote.example/users/bob")).expect("actor");
        assert!(
            doc.key("https://remote.example/users/bob#main-key")
                .is_none()
        );
        assert_eq!(doc.input.public_key_pem, None);
    }

    #[test]
    fn inboxes_on_another_origin_than_the_actor_are_refused() {
        let actor = |inbox: &str, shared: &str| {
            json!({
                "id": "https://remote.example/users/bob", "type": "Person", "inbox": inbox,
                "endpoints": {"sharedInbox": shared}
            })
        };
        let from = url("https://remote.example/users/bob");
        assert!(
            parse_actor(
                &actor(
                    "https://remote.example/users/bob/inbox",
                    "https://remote.example/inbox"
                ),
                &from
            )
            .is_ok()
        );
        for (inbox, shared) in [
            (
                "https://victim.example/inbox",
                "https://remote.example/inbox",
            ),
            (
                "https://remote.example/users/bob/inbox",
                "https://victim.example/inbox",
            ),
            (
                "https://bridge.example/inbox",
                "https://remote.example/inbox",
            ),
            (
                "http://remote.example/users/bob/inbox",
                "https://remote.example/inbox",
            ),
            (
                "https://remote.example:8443/inbox",
                "https://remote.example/inbox",
            ),
        ] {
            assert!(
                parse_actor(&actor(inbox, shared), &from).is_err(),
                "{inbox} {shared}"
            );
        }
    }

    #[test]
    fn notes_and_arrays_are_not_actors() {
        let note =
            json!({"id": "https://r.example/n", "type": "Note", "inbox": "https://r.example/i"});
        assert!(parse_actor(&note, &url("https://r.example/n")).is_err());
        let typed_list = json!({"id": "https://r.example/u", "type": ["Person"], "inbox": "https://r.example/i"});
        assert!(parse_actor(&typed_list, &url("https://r.example/u")).is_err());
    }

    #[test]
    fn failures_expire_and_the_budget_runs_out() {
        let failures = FetchFailures::new(NonZeroUsize::MIN, Duration::from_millis(30));
        let a = url("https://a.example/k");
        failures.record(&a, RemoteFailure::NotFound);
        assert_eq!(failures.recent(&a), Some(RemoteFailure::NotFound));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(failures.recent(&a), None);

        let budget = FetchBudget::new(2);
        assert!(budget.take().is_ok());
        assert!(budget.take().is_ok());
        assert!(matches!(budget.take(), Err(Error::FetchBudgetExhausted(2))));
    }
}
