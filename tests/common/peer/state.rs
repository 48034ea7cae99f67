//! What a peer knows and has seen: its local actor, the remote actors it verified, its
//! follow relations, its own notes, and the record of its inbox and of its deliveries.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::actor::DbActor;

/// The app data handed to the crate: shared by the HTTP workers and the test's handle.
pub type PeerData = Arc<PeerState>;

/// Kinds of activity the peer's inbox accepts; anything else is refused at parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum ActivityKind {
    /// `Follow`
    Follow,
    /// `Accept` (of a Follow)
    Accept,
    /// `Reject` (of a Follow)
    Reject,
    /// `Create` (of a Note)
    Create,
    /// `Update` (of a Note or an actor)
    Update,
    /// `Delete` (of a Note, a Tombstone or an actor)
    Delete,
    /// `Undo` (of a Follow, Like, Announce or Block)
    Undo,
    /// `Announce`
    Announce,
    /// `Like`
    Like,
    /// `Move` (account migration)
    Move,
    /// `Block`
    Block,
    /// `Flag` (a report)
    Flag,
}

/// One activity that reached the inbox and passed the crate's digest, signature and
/// domain checks and the peer's own checks.
#[derive(Debug, Clone)]
pub struct ReceivedActivity {
    /// The activity's `type`.
    pub kind: ActivityKind,
    /// The activity's `id`.
    pub id: Url,
    /// The activity's `actor`, whose key verified the HTTP signature.
    pub actor: Url,
    /// The activity's `object` as sent (a URL string or an embedded object).
    pub object: Value,
    /// The whole activity as received.
    pub json: Value,
}

impl ReceivedActivity {
    /// The object's id, whether the object was sent as a URL or embedded.
    pub fn object_id(&self) -> Option<Url> {
        match &self.object {
            Value::String(s) => Url::parse(s).ok(),
            Value::Object(map) => map.get("id")?.as_str().and_then(|s| Url::parse(s).ok()),
            _ => None,
        }
    }
}

/// Where a Follow sent by the peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowState {
    /// Sent, not answered yet.
    Pending,
    /// The target sent a verified `Accept`.
    Accepted,
    /// The target sent a verified `Reject`.
    Rejected,
    /// The peer sent `Undo(Follow)`.
    Undone,
}

/// A Follow the peer sent.
#[derive(Debug, Clone)]
pub(crate) struct SentFollow {
    pub(crate) target: Url,
    pub(crate) state: FollowState,
}

/// One HTTP request the crate's client made for the peer, as the client saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `GET` or `POST`.
    pub method: String,
    /// The request URL.
    pub url: Url,
    /// The `id` of the JSON body, for POSTs of activities.
    pub activity_id: Option<Url>,
    /// The response status, or `None` when no response came.
    pub status: Option<u16>,
}

/// A note the peer published, or its tombstone.
#[derive(Debug, Clone)]
pub(crate) enum StoredNote {
    Live(Value),
    Deleted,
}

/// Everything a peer keeps; each field has its own lock so no lock is held across an await.
pub struct PeerState {
    pub(crate) local: DbActor,
    pub(crate) auto_accept: bool,
    remote_actors: Mutex<HashMap<Url, DbActor>>,
    followers: Mutex<BTreeMap<Url, Url>>,
    following: Mutex<BTreeMap<Url, SentFollow>>,
    notes: Mutex<HashMap<Url, StoredNote>>,
    received: Mutex<Vec<ReceivedActivity>>,
    rejections: Mutex<Vec<String>>,
    deliveries: Mutex<Vec<Delivery>>,
    actor_fetches: AtomicUsize,
}

/// Locks `m`; a poisoned lock only means another test thread panicked, and its data is
/// still the best record there is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PeerState {
    pub(crate) fn new(local: DbActor, auto_accept: bool) -> Self {
        Self {
            local,
            auto_accept,
            remote_actors: Mutex::default(),
            followers: Mutex::default(),
            following: Mutex::default(),
            notes: Mutex::default(),
            received: Mutex::default(),
            rejections: Mutex::default(),
            deliveries: Mutex::default(),
            actor_fetches: AtomicUsize::new(0),
        }
    }

    pub(crate) fn remote_actor(&self, id: &Url) -> Option<DbActor> {
        lock(&self.remote_actors).get(id).cloned()
    }

    pub(crate) fn store_remote_actor(&self, actor: DbActor) {
        lock(&self.remote_actors).insert(actor.id.clone(), actor);
    }

    pub(crate) fn forget_remote_actor(&self, id: &Url) {
        lock(&self.remote_actors).remove(id);
    }

    pub(crate) fn add_follower(&self, actor: Url, inbox: Url) {
        lock(&self.followers).insert(actor, inbox);
    }

    pub(crate) fn remove_follower(&self, actor: &Url) {
        lock(&self.followers).remove(actor);
    }

    pub(crate) fn followers(&self) -> BTreeMap<Url, Url> {
        lock(&self.followers).clone()
    }

    pub(crate) fn add_follow(&self, id: Url, target: Url) {
        lock(&self.following).insert(
            id,
            SentFollow {
                target,
                state: FollowState::Pending,
            },
        );
    }

    pub(crate) fn follow(&self, id: &Url) -> Option<SentFollow> {
        lock(&self.following).get(id).cloned()
    }

    /// The pending follow of `target`, for answers that do not name the Follow's id.
    pub(crate) fn pending_follow_of(&self, target: &Url) -> Option<Url> {
        lock(&self.following)
            .iter()
            .find(|(_, f)| &f.target == target && f.state == FollowState::Pending)
            .map(|(id, _)| id.clone())
    }

    pub(crate) fn set_follow_state(&self, id: &Url, state: FollowState) {
        if let Some(f) = lock(&self.following).get_mut(id) {
            f.state = state;
        }
    }

    /// Marks every follow of `target` with `state` (a Block ends them all).
    pub(crate) fn set_follows_of(&self, target: &Url, state: FollowState) {
        for f in lock(&self.following).values_mut() {
            if &f.target == target {
                f.state = state;
            }
        }
    }

    pub(crate) fn note(&self, id: &Url) -> Option<StoredNote> {
        lock(&self.notes).get(id).cloned()
    }

    pub(crate) fn store_note(&self, id: Url, note: StoredNote) {
        lock(&self.notes).insert(id, note);
    }

    pub(crate) fn record_received(&self, activity: ReceivedActivity) {
        lock(&self.received).push(activity);
    }

    pub(crate) fn received(&self) -> Vec<ReceivedActivity> {
        lock(&self.received).clone()
    }

    pub(crate) fn record_rejection(&self, reason: String) {
        lock(&self.rejections).push(reason);
    }

    pub(crate) fn rejections(&self) -> Vec<String> {
        lock(&self.rejections).clone()
    }

    pub(crate) fn record_delivery(&self, delivery: Delivery) {
        lock(&self.deliveries).push(delivery);
    }

    pub(crate) fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.deliveries).clone()
    }

    pub(crate) fn count_actor_fetch(&self) {
        self.actor_fetches.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn actor_fetches(&self) -> usize {
        self.actor_fetches.load(Ordering::SeqCst)
    }
}
