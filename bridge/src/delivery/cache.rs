//! What a fan-out shares between its deliveries: the payload (stored once per activity),
//! the signing key, and the consent verdict and the blocks for a very short time.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::Bytes;
use lru::LruCache;

use super::{blocks::BlockCache, consent::Consent};
use crate::{db::activities::ActivityId, federation::SigningKey};

/// Activities whose payload is kept; a fan-out to thousands of inboxes reads its payload
/// once instead of once per inbox.
const ACTIVITIES: usize = 1024;
/// Local actors whose parsed signing key is kept.
const KEYS: usize = 4096;
/// Keys change only on rotation; a minute of staleness costs at most a minute of
/// signatures by the retired key, which remote servers still accept (it stays published
/// until rotation completes).
const KEY_TTL: Duration = Duration::from_secs(60);
/// Consent is re-read at send time; within one fan-out round the same answer is reused for
/// this long so that a 2,000-inbox fan-out does not read the user and post 2,000 times. It
/// is far shorter than anything a person could notice.
const CONSENT_TTL: Duration = Duration::from_millis(500);
/// Stripes of the refresh locks: enough that refreshes of different activities rarely
/// wait on each other.
const REFRESH_STRIPES: usize = 64;

/// A stored activity as the sender needs it.
#[derive(Debug)]
pub struct ActivityContext {
    /// The JSON document, sent as is.
    pub payload: Bytes,
    /// Author; `None` is the instance actor.
    pub user_id: Option<i64>,
}

/// The delivery engine's caches; shared by every send task of a process.
pub struct Caches {
    activities: Mutex<LruCache<ActivityId, Arc<ActivityContext>>>,
    consent: Mutex<LruCache<ActivityId, (Instant, Consent)>>,
    keys: Mutex<LruCache<Option<i64>, (Instant, SigningKey)>>,
    /// The operator's and the authors' blocks.
    pub blocks: BlockCache,
    /// Held while an activity's shared state is read again, so that when its consent
    /// verdict expires the queued sends of a fan-out wait for one read instead of each
    /// taking a pooled connection for the same rows (which, once the engine is behind,
    /// puts it further behind).
    refreshing: Vec<tokio::sync::Mutex<()>>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            activities: Mutex::new(LruCache::new(nonzero(ACTIVITIES))),
            consent: Mutex::new(LruCache::new(nonzero(ACTIVITIES))),
            keys: Mutex::new(LruCache::new(nonzero(KEYS))),
            blocks: BlockCache::default(),
            refreshing: (0..REFRESH_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }
}

fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned cache is still a valid cache: entries are replaced whole.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Caches {
    /// The cached activity.
    pub fn activity(&self, id: ActivityId) -> Option<Arc<ActivityContext>> {
        lock(&self.activities).get(&id).cloned()
    }

    /// Caches an activity.
    pub fn put_activity(&self, id: ActivityId, context: Arc<ActivityContext>) {
        lock(&self.activities).put(id, context);
    }

    /// Waits for, and holds, the right to read `id`'s shared state from the database.
    pub async fn refresh_lock(&self, id: ActivityId) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = usize::try_from(id.0.rem_euclid(REFRESH_STRIPES as i64)).unwrap_or(0);
        self.refreshing[stripe].lock().await
    }

    /// The recent consent verdict for an activity.
    pub fn consent(&self, id: ActivityId) -> Option<Consent> {
        let mut cache = lock(&self.consent);
        match cache.get(&id) {
            Some((at, verdict)) if at.elapsed() < CONSENT_TTL => Some(*verdict),
            _ => None,
        }
    }

    /// Remembers a consent verdict briefly.
    pub fn put_consent(&self, id: ActivityId, verdict: Consent) {
        lock(&self.consent).put(id, (Instant::now(), verdict));
    }

    /// The recent signing key of a local actor.
    pub fn key(&self, user: Option<i64>) -> Option<SigningKey> {
        let mut cache = lock(&self.keys);
        match cache.get(&user) {
            Some((at, key)) if at.elapsed() < KEY_TTL => Some(key.clone()),
            _ => None,
        }
    }

    /// Caches a signing key.
    pub fn put_key(&self, user: Option<i64>, key: SigningKey) {
        lock(&self.keys).put(user, (Instant::now(), key));
    }
}
