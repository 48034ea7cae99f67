//! An independent ActivityPub server for interoperability tests: a Mastodon-like remote
//! peer on loopback built on Lemmy's `activitypub_federation` crate, so that everything
//! protocol-related (WebFinger, actor fetching, HTTP signatures on sends and fetches,
//! verification at the inbox, dereferencing) is done by an implementation we did not write.
//!
//! Hosts are `localhost:PORT`, never `127.0.0.1:PORT`: the crate 0.6.6 requires URLs with a
//! DNS host name (`Url::domain()`), refuses IP literals for remote ids and inboxes, and would
//! panic building the Host header of a delivery to an IP inbox. A server under test must
//! therefore be addressed (and name its ids) as `localhost:PORT` too.

mod activities;
mod actor;
mod delivery;
mod http;
mod note;
mod state;

use std::{net::TcpListener, time::Duration};

use activitypub_federation::{
    FEDERATION_CONTENT_TYPE,
    config::{Data, FederationConfig, FederationMiddleware},
    fetch::{fetch_object_http, object_id::ObjectId, webfinger::webfinger_resolve_actor},
    kinds::activity::{CreateType, DeleteType, FollowType, LikeType, UndoType, UpdateType},
    traits::Actor,
};
use actix_web::{App, HttpServer, dev::ServerHandle};
use anyhow::{Context as _, anyhow, ensure};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{Map, Value, json};
use url::Url;

pub use activities::InboxActivity;
pub use actor::{ActorType, RemoteActorView};
pub use delivery::Tamper;
pub use note::{NoteKind, PUBLIC};
pub use state::{ActivityKind, Delivery, FollowState, ReceivedActivity};

use activities::{
    Create, Delete, Follow, Like, RawActivity, Undo, UndoObject, UndoableKind, UndoneActivity,
    Update, UpdateObject,
};
use actor::{DbActor, acct_of};
use note::{Note, ObjectOrId};
use state::{PeerData, PeerState, StoredNote};

/// Fails unless `a` and `b` have the same scheme, host and port. The crate compares hosts
/// only, which on loopback cannot tell two servers apart.
pub(crate) fn same_origin(a: &Url, b: &Url) -> anyhow::Result<()> {
    ensure!(
        a.origin() == b.origin(),
        "{a} is not on the same server as {b}"
    );
    Ok(())
}

/// How a peer behaves.
#[derive(Debug, Clone, Copy)]
pub struct PeerOptions {
    /// Answer every verified Follow with a signed Accept (Mastodon's default for
    /// unlocked accounts).
    pub auto_accept: bool,
    /// Sign like draft-cavage-10 (`Date` and `Host` signed, no `(created)`/`(expires)`),
    /// the crate's compatibility mode; otherwise its default draft-11 style.
    pub http_signature_compat: bool,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            auto_accept: true,
            http_signature_compat: false,
        }
    }
}

/// A running remote server with one Person, on `http://localhost:PORT`.
pub struct RemotePeer {
    config: FederationConfig<PeerData>,
    state: PeerData,
    client: ClientWithMiddleware,
    server: ServerHandle,
}

impl RemotePeer {
    /// Starts a peer with one local Person `username` and default options.
    pub async fn start(username: &str) -> RemotePeer {
        Self::start_with(username, PeerOptions::default())
            .await
            .expect("the test peer starts")
    }

    /// Starts a peer with `options`.
    pub async fn start_with(username: &str, options: PeerOptions) -> anyhow::Result<RemotePeer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let domain = format!("localhost:{port}");
        let base = Url::parse(&format!("http://{domain}/"))?;
        let state = PeerData::new(PeerState::new(
            DbActor::local(&base, username)?,
            options.auto_accept,
        ));
        let client = delivery::client(state.clone())?;
        let config = FederationConfig::builder()
            .domain(domain)
            .app_data(state.clone())
            .client(client.clone())
            // debug: http and explicit ports allowed, localhost allowed, sends synchronous.
            .debug(true)
            .http_signature_compat(options.http_signature_compat)
            // Every fetch is signed by the Person, like Mastodon in secure mode.
            .signed_fetch_actor(&state.local)
            .build()
            .await?;
        let app_config = config.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(FederationMiddleware::new(app_config.clone()))
                .configure(http::routes)
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(RemotePeer {
            config,
            state,
            client,
            server: handle,
        })
    }

    fn data(&self) -> Data<PeerData> {
        self.config.to_request_data()
    }

    /// The Person's id, `http://localhost:PORT/users/NAME`.
    pub fn actor_id(&self) -> Url {
        self.state.local.id.clone()
    }

    /// `localhost:PORT`
    pub fn domain(&self) -> String {
        self.config.domain().to_owned()
    }

    /// `NAME@localhost:PORT`, for WebFinger.
    pub fn handle(&self) -> String {
        format!(
            "{}@{}",
            self.state.local.json.preferred_username,
            self.domain()
        )
    }

    /// The Person's personal inbox.
    pub fn inbox(&self) -> Url {
        self.state.local.inbox()
    }

    /// The server's shared inbox.
    pub fn shared_inbox(&self) -> Url {
        self.state.local.shared_inbox_or_inbox()
    }

    /// The Person's public key (SPKI PEM).
    pub fn public_key_pem(&self) -> String {
        self.state.local.public_key_pem().to_owned()
    }

    /// Resolves `user@host:port` (a leading `@` is allowed) with the crate's WebFinger
    /// client, then fetches and verifies the actor through the crate.
    pub async fn resolve(&self, handle: &str) -> anyhow::Result<RemoteActorView> {
        let handle = handle.trim_start_matches('@').to_owned();
        let data = self.data();
        // The crate `debug_assert`s that the WebFinger subject equals `acct:` + the handle;
        // in a test build that is a panic, caught here as an error.
        let actor = tokio::spawn(async move {
            webfinger_resolve_actor::<PeerData, DbActor>(&handle, &data).await
        })
        .await
        .map_err(|e| anyhow!("WebFinger resolution panicked (subject mismatch?): {e}"))??;
        Ok(RemoteActorView::from(&actor))
    }

    /// The actor `id`, from the peer's cache or fetched and verified by the crate.
    pub async fn actor(&self, id: &Url) -> anyhow::Result<RemoteActorView> {
        Ok(RemoteActorView::from(&self.dereference(id).await?))
    }

    /// Fetches and verifies the actor `id` again, ignoring the cache.
    pub async fn refresh_actor(&self, id: &Url) -> anyhow::Result<RemoteActorView> {
        let actor = ObjectId::<DbActor>::from(id.clone())
            .dereference_forced(&self.data())
            .await?;
        Ok(RemoteActorView::from(&actor))
    }

    async fn dereference(&self, id: &Url) -> anyhow::Result<DbActor> {
        ObjectId::<DbActor>::from(id.clone())
            .dereference(&self.data())
            .await
    }

    /// Sends a signed `Follow` of `actor` to its inbox; returns the Follow's id. Its state
    /// is [`RemotePeer::follow_state`].
    pub async fn follow(&self, actor: &Url) -> anyhow::Result<Url> {
        let target = self.dereference(actor).await?;
        let id = self
            .state
            .local
            .id
            .join(&format!("/{}", uuid::Uuid::new_v4()))?;
        self.state.add_follow(id.clone(), target.id.clone());
        let follow = Follow {
            id: id.clone(),
            kind: FollowType::Follow,
            actor: self.actor_id(),
            object: target.id.clone(),
        };
        delivery::send(&self.data(), follow, vec![target.inbox()]).await?;
        Ok(id)
    }

    /// Where the Follow `follow_id` sent by this peer stands.
    pub fn follow_state(&self, follow_id: &Url) -> Option<FollowState> {
        self.state.follow(follow_id).map(|f| f.state)
    }

    /// Sends `Undo(Follow)` for `follow_id`; returns the Undo's id.
    pub async fn unfollow(&self, actor: &Url, follow_id: &Url) -> anyhow::Result<Url> {
        let target = self.dereference(actor).await?;
        let id = Url::parse(&format!("{follow_id}/undo"))?;
        let undo = self.undo(
            id.clone(),
            UndoableKind::Follow,
            follow_id,
            Value::String(target.id.to_string()),
        );
        delivery::send(&self.data(), undo, vec![target.inbox()]).await?;
        self.state.set_follow_state(follow_id, FollowState::Undone);
        Ok(id)
    }

    fn undo(&self, id: Url, kind: UndoableKind, undone: &Url, object: Value) -> Undo {
        Undo {
            id,
            kind: UndoType::Undo,
            actor: self.actor_id(),
            object: UndoObject::Activity(UndoneActivity {
                id: undone.clone(),
                kind,
                actor: self.actor_id(),
                object,
            }),
        }
    }

    /// Sends a `Like` of `object` to the inbox of `object_owner`; returns the Like's id.
    pub async fn like(&self, object: &Url, object_owner: &Url) -> anyhow::Result<Url> {
        let owner = self.dereference(object_owner).await?;
        let id = self
            .actor_id()
            .join(&format!("#likes/{}", uuid::Uuid::new_v4()))?;
        let like = Like {
            id: id.clone(),
            kind: LikeType::Like,
            actor: self.actor_id(),
            object: ObjectOrId::Id(object.clone()),
        };
        delivery::send(&self.data(), like, vec![owner.inbox()]).await?;
        Ok(id)
    }

    /// Sends `Undo(Like)` of the Like `like_id` of `object`; returns the Undo's id.
    pub async fn unlike(
        &self,
        like_id: &Url,
        object: &Url,
        object_owner: &Url,
    ) -> anyhow::Result<Url> {
        let owner = self.dereference(object_owner).await?;
        let id = Url::parse(&format!("{like_id}/undo"))?;
        let undo = self.undo(
            id.clone(),
            UndoableKind::Like,
            like_id,
            Value::String(object.to_string()),
        );
        delivery::send(&self.data(), undo, vec![owner.inbox()]).await?;
        Ok(id)
    }

    /// Publishes a public reply to `in_reply_to` mentioning `to_actor` (to Public, cc the
    /// actor and the peer's followers, with a Mention tag), delivered to the actor and the
    /// followers; returns the Note's id (the Create's id is `NOTE/activity`).
    pub async fn reply(
        &self,
        in_reply_to: &Url,
        to_actor: &Url,
        content: &str,
    ) -> anyhow::Result<Url> {
        let target = self.dereference(to_actor).await?;
        let mention = acct_of(&target)?;
        let mut note = self.new_note(&format!(
            r#"<p><span class="h-card"><a href="{}" class="u-url mention">{mention}</a></span> {content}</p>"#,
            target.id
        ))?;
        note.in_reply_to = Some(in_reply_to.clone());
        note.cc.insert(0, target.id.clone());
        note.tag
            .push(json!({"type": "Mention", "href": target.id, "name": mention}));
        let mut inboxes = self.follower_inboxes();
        inboxes.push(target.shared_inbox_or_inbox());
        self.publish(note, inboxes).await
    }

    /// Publishes a public Note to the peer's followers; returns the Note's id.
    pub async fn post(&self, content: &str) -> anyhow::Result<Url> {
        let note = self.new_note(&format!("<p>{content}</p>"))?;
        self.publish(note, self.follower_inboxes()).await
    }

    fn new_note(&self, html: &str) -> anyhow::Result<Note> {
        let id = Url::parse(&format!(
            "{}/statuses/{}",
            self.actor_id(),
            uuid::Uuid::new_v4()
        ))?;
        Ok(Note {
            kind: NoteKind::Note,
            url: Some(Value::String(id.to_string())),
            id,
            attributed_to: self.actor_id(),
            to: vec![Url::parse(PUBLIC)?],
            cc: vec![self.state.local.followers_url()?],
            content: Some(html.to_owned()),
            content_map: None,
            summary: None,
            sensitive: Some(false),
            in_reply_to: None,
            published: Some(now()),
            updated: None,
            attachment: Vec::new(),
            tag: Vec::new(),
            extra: Map::new(),
        })
    }

    async fn publish(&self, note: Note, inboxes: Vec<Url>) -> anyhow::Result<Url> {
        let id = note.id.clone();
        self.state
            .store_note(id.clone(), StoredNote::Live(serde_json::to_value(&note)?));
        let create = Create {
            id: Url::parse(&format!("{id}/activity"))?,
            kind: CreateType::Create,
            actor: self.actor_id(),
            to: note.to.clone(),
            cc: note.cc.clone(),
            object: note,
        };
        delivery::send(&self.data(), create, inboxes).await?;
        Ok(id)
    }

    fn follower_inboxes(&self) -> Vec<Url> {
        self.state.followers().into_values().collect()
    }

    /// Edits the peer's Note `note` and sends `Update(Note)` to the followers; returns the
    /// Update's id.
    pub async fn edit(&self, note: &Url, content: &str) -> anyhow::Result<Url> {
        let Some(StoredNote::Live(json)) = self.state.note(note) else {
            return Err(anyhow!("{note} is not a live note of this peer"));
        };
        let mut edited: Note = serde_json::from_value(json)?;
        edited.content = Some(format!("<p>{content}</p>"));
        edited.updated = Some(now());
        self.state.store_note(
            note.clone(),
            StoredNote::Live(serde_json::to_value(&edited)?),
        );
        let id = Url::parse(&format!("{note}#updates/{}", uuid::Uuid::new_v4()))?;
        let update = Update {
            id: id.clone(),
            kind: UpdateType::Update,
            actor: self.actor_id(),
            to: edited.to.clone(),
            cc: edited.cc.clone(),
            object: UpdateObject::Note(Box::new(edited)),
        };
        delivery::send(&self.data(), update, self.follower_inboxes()).await?;
        Ok(id)
    }

    /// Deletes the peer's Note `note` (it then answers 410) and sends `Delete(Tombstone)`
    /// to the followers; returns the Delete's id.
    pub async fn delete(&self, note: &Url) -> anyhow::Result<Url> {
        ensure!(
            matches!(self.state.note(note), Some(StoredNote::Live(_))),
            "{note} is not a live note of this peer"
        );
        self.state.store_note(note.clone(), StoredNote::Deleted);
        let id = Url::parse(&format!("{note}#delete"))?;
        let mut rest = Map::new();
        rest.insert("type".to_owned(), json!("Tombstone"));
        let delete = Delete {
            id: id.clone(),
            kind: DeleteType::Delete,
            actor: self.actor_id(),
            to: vec![Url::parse(PUBLIC)?],
            cc: Vec::new(),
            object: ObjectOrId::Object {
                id: note.clone(),
                rest,
            },
        };
        delivery::send(&self.data(), delete, self.follower_inboxes()).await?;
        Ok(id)
    }

    /// Fetches `url` with a signed GET through the crate, which checks the Content-Type and
    /// that the document's `id` is `url`.
    pub async fn fetch_object(&self, url: &Url) -> anyhow::Result<Value> {
        Ok(fetch_object_http::<PeerData, Value>(url, &self.data())
            .await?
            .object)
    }

    /// Signs `activity` (any JSON with `id` and `actor`; `@context` is added) through the
    /// crate and POSTs it to `inbox`; returns the status.
    pub async fn deliver_json(&self, inbox: &Url, activity: Value) -> anyhow::Result<u16> {
        let raw: RawActivity = serde_json::from_value(activity)?;
        let statuses = delivery::send_for_status(&self.data(), raw, vec![inbox.clone()]).await?;
        statuses
            .first()
            .map(|(_, s)| *s)
            .context("no delivery was made")
    }

    /// POSTs `activity` (with `@context` added) to `inbox` without any signature or
    /// digest; returns the status.
    pub async fn deliver_unsigned(&self, inbox: &Url, activity: &Value) -> anyhow::Result<u16> {
        let response = self
            .client
            .post(inbox.as_str())
            .header("content-type", FEDERATION_CONTENT_TYPE)
            .body(serde_json::to_vec(&with_context(activity))?)
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    /// POSTs `sent` to `inbox` carrying the peer's valid signature of `signed` (both with
    /// `@context` added), spoiled as `tamper` says; returns the status.
    pub async fn deliver_tampered(
        &self,
        inbox: &Url,
        signed: &Value,
        sent: &Value,
        tamper: Tamper,
    ) -> anyhow::Result<u16> {
        delivery::send_tampered(
            &self.data(),
            &self.client,
            inbox,
            serde_json::to_vec(&with_context(signed))?,
            serde_json::to_vec(&with_context(sent))?,
            tamper,
        )
        .await
    }

    /// Every activity that reached an inbox of the peer and passed verification, in order.
    pub fn received(&self) -> Vec<ReceivedActivity> {
        self.state.received()
    }

    /// Waits up to `timeout` for a received activity matching `predicate` (one already
    /// received counts).
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&ReceivedActivity) -> bool,
        timeout: Duration,
    ) -> Option<ReceivedActivity> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.state.received().into_iter().find(|a| predicate(a)) {
                return Some(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// How many inbox requests were refused (bad digest or signature, unknown or invalid
    /// activity).
    pub fn rejected_count(&self) -> usize {
        self.state.rejections().len()
    }

    /// Why each refused inbox request was refused, in order.
    pub fn rejections(&self) -> Vec<String> {
        self.state.rejections()
    }

    /// How many times the Person's actor document was fetched.
    pub fn actor_fetches(&self) -> usize {
        self.state.actor_fetches()
    }

    /// Every request the peer's crate client made (deliveries and fetches) with its status.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.deliveries()
    }

    /// The actors that follow the peer's Person.
    pub fn followers(&self) -> Vec<Url> {
        self.state.followers().into_keys().collect()
    }
}

impl Drop for RemotePeer {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for it.
        drop(self.server.stop(false));
    }
}

/// `activity` with the ActivityStreams `@context` unless it has one, since the crate
/// refuses activities without it before it looks at their signature.
fn with_context(activity: &Value) -> Value {
    let mut activity = activity.clone();
    if let Value::Object(map) = &mut activity {
        map.entry("@context")
            .or_insert_with(|| json!("https://www.w3.org/ns/activitystreams"));
    }
    activity
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
