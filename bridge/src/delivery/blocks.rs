//! Blocks at send time. A block severs follows at once, so no new fan-out reaches a blocked
//! inbox; but deliveries queued before it still wait in the queue (for hours, when the host
//! was failing). Each send checks them against the blocks as they are now: the operator's
//! `reject` blocks, and the author's blocks of the account or server behind the inbox.
//!
//! Blocks are read once per claim round into a snapshot shared by every send of the round
//! (a few rows; a fan-out of thousands reads them once), so a new block reaches the queue
//! within [`TTL`].
//!
//! Retractions still go (Delete, Undo, Reject, Block). Mastodon sends nothing at all to a
//! suspended server; we send these because each only takes something back from a server
//! that already has it: a Delete removes a post that went there before the block (an
//! author who opts out is promised removal everywhere, and a block must not keep their
//! post alive there), the `Reject(Follow)`s that a server block itself queues make the
//! remote side forget its follows, and a user's `Block` is meant for the blocked account.
//! None of them carries content. Everything else (Create, Update, Announce, Accept, Move,
//! Flag, …) is dropped for that inbox only.

use std::{
    collections::{HashMap, HashSet},
    num::NonZeroUsize,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use lru::LruCache;

use super::consent;
use crate::{
    db::{AnyConnection, blocks, user_blocks},
    error::Error,
    federation::protocol::activity::ActivityType,
};

/// Longest a snapshot of blocks is used: a block added now stops queued content within
/// this long. A send already started when the block is added may still complete, as with
/// any block.
pub const TTL: Duration = Duration::from_secs(2);
/// A claim round reloads snapshots older than this, so that the sends it starts right
/// after find them fresh and never load blocks themselves.
const REFRESH_AFTER: Duration = Duration::from_secs(1);
/// Authors whose blocks are kept.
const AUTHORS: usize = 4096;

/// Why a delivery was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// The operator blocks the inbox's server (or a parent domain) with `reject`.
    Server,
    /// The author blocks the inbox's server (or a parent domain).
    ServerByAuthor,
    /// The author blocks the account whose personal inbox this is.
    AccountByAuthor,
}

impl Blocked {
    /// Kept as the delivery's `last_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server blocked",
            Self::ServerByAuthor => "server blocked by the author",
            Self::AccountByAuthor => "account blocked by the author",
        }
    }
}

/// The operator's `reject` blocks.
#[derive(Debug, Default)]
pub struct ServerBlocks {
    rejected: HashSet<String>,
}

/// One author's blocks.
#[derive(Debug, Default)]
pub struct AuthorBlocks {
    /// Blocked domains (each covers its subdomains).
    domains: HashSet<String>,
    /// Personal inboxes of blocked accounts.
    inboxes: HashSet<String>,
}

/// Whether an activity of stored `kind` takes something back, and so still goes to a
/// blocked inbox (see the module documentation).
pub fn retracts(kind: &str) -> bool {
    matches!(
        consent::activity_type(kind),
        Some(
            ActivityType::Delete | ActivityType::Undo | ActivityType::Reject | ActivityType::Block
        )
    )
}

/// Why an activity of `kind` must not go to `inbox` on `host`, if it must not. `author` is
/// `None` for the instance actor, which no user's blocks bind.
pub fn check(
    kind: &str,
    inbox: &str,
    host: &str,
    servers: &ServerBlocks,
    author: Option<&AuthorBlocks>,
) -> Option<Blocked> {
    if retracts(kind) {
        return None;
    }
    if blocks::any_covers(&servers.rejected, host) {
        return Some(Blocked::Server);
    }
    let author = author?;
    // A shared inbox serves the whole server, so an account block cannot stop it (others
    // there follow the author); a domain block does, by host.
    if blocks::any_covers(&author.domains, host) {
        Some(Blocked::ServerByAuthor)
    } else if author.inboxes.contains(inbox) {
        Some(Blocked::AccountByAuthor)
    } else {
        None
    }
}

/// The snapshots, shared by every send task of a process.
pub struct BlockCache {
    servers: Mutex<Option<(Instant, Arc<ServerBlocks>)>>,
    authors: Mutex<LruCache<i64, (Instant, Arc<AuthorBlocks>)>>,
}

impl Default for BlockCache {
    fn default() -> Self {
        Self {
            servers: Mutex::new(None),
            authors: Mutex::new(LruCache::new(
                NonZeroUsize::new(AUTHORS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned cache is still a valid cache: entries are replaced whole.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BlockCache {
    /// The operator's blocks, if read less than [`TTL`] ago.
    pub fn servers(&self) -> Option<Arc<ServerBlocks>> {
        lock(&self.servers)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, blocks)| Arc::clone(blocks))
    }

    /// `user`'s blocks, if read less than [`TTL`] ago.
    pub fn author(&self, user: i64) -> Option<Arc<AuthorBlocks>> {
        lock(&self.authors)
            .get(&user)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, blocks)| Arc::clone(blocks))
    }

    /// Whether a claim round should reload the operator's blocks.
    pub fn servers_due(&self) -> bool {
        lock(&self.servers)
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= REFRESH_AFTER)
    }

    /// Whether a claim round should reload `user`'s blocks.
    pub fn author_due(&self, user: i64) -> bool {
        lock(&self.authors)
            .peek(&user)
            .is_none_or(|(at, _)| at.elapsed() >= REFRESH_AFTER)
    }

    /// Reads the operator's blocks now.
    pub fn load_servers(&self, conn: &mut AnyConnection) -> Result<Arc<ServerBlocks>, Error> {
        let loaded = Arc::new(ServerBlocks {
            rejected: blocks::rejected_domains(conn)?,
        });
        *lock(&self.servers) = Some((Instant::now(), Arc::clone(&loaded)));
        Ok(loaded)
    }

    /// Reads the blocks of `users` now, in two queries whatever their number.
    pub fn load_authors(
        &self,
        conn: &mut AnyConnection,
        users: &[i64],
    ) -> Result<HashMap<i64, Arc<AuthorBlocks>>, Error> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let mut loaded: HashMap<i64, AuthorBlocks> = users
            .iter()
            .map(|u| (*u, AuthorBlocks::default()))
            .collect();
        for (user, domain) in user_blocks::blocked_domains(conn, users)? {
            loaded.entry(user).or_default().domains.insert(domain);
        }
        for (user, inbox) in user_blocks::blocked_actor_inboxes(conn, users)? {
            loaded.entry(user).or_default().inboxes.insert(inbox);
        }
        let now = Instant::now();
        let mut cache = lock(&self.authors);
        Ok(loaded
            .into_iter()
            .map(|(user, blocks)| {
                let blocks = Arc::new(blocks);
                cache.put(user, (now, Arc::clone(&blocks)));
                (user, blocks)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(domains: &[&str]) -> ServerBlocks {
        ServerBlocks {
            rejected: domains.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    #[test]
    fn content_to_a_rejected_server_or_its_subdomains_is_blocked_and_retractions_go() {
        let rejected = servers(&["evil.example"]);
        for host in ["evil.example", "a.evil.example:8443", "EVIL.example."] {
            for kind in ["Create", "Update", "Announce", "Accept", "Flag", "Explode"] {
                assert_eq!(
                    check(kind, "https://x/inbox", host, &rejected, None),
                    Some(Blocked::Server),
                    "{kind} to {host}"
                );
            }
            for kind in ["Delete", "Undo", "Reject", "Block"] {
                assert_eq!(
                    check(kind, "https://x/inbox", host, &rejected, None),
                    None,
                    "{kind} to {host}"
                );
            }
        }
        assert_eq!(
            check(
                "Create",
                "https://x/inbox",
                "notevil.example",
                &rejected,
                None
            ),
            None
        );
    }

    #[test]
    fn author_blocks_apply_by_host_and_by_personal_inbox_only() {
        let none = servers(&[]);
        let author = AuthorBlocks {
            domains: HashSet::from(["spam.example".to_owned()]),
            inboxes: HashSet::from(["https://one.example/users/bob/inbox".to_owned()]),
        };
        let verdict = |inbox: &str, host: &str| check("Create", inbox, host, &none, Some(&author));
        assert_eq!(
            verdict("https://spam.example/inbox", "spam.example"),
            Some(Blocked::ServerByAuthor)
        );
        assert_eq!(
            verdict("https://m.spam.example/inbox", "m.spam.example"),
            Some(Blocked::ServerByAuthor)
        );
        assert_eq!(
            verdict("https://one.example/users/bob/inbox", "one.example"),
            Some(Blocked::AccountByAuthor)
        );
        // The shared inbox of bob's server still serves its other followers.
        assert_eq!(verdict("https://one.example/inbox", "one.example"), None);
        assert_eq!(
            check(
                "Block",
                "https://one.example/users/bob/inbox",
                "one.example",
                &none,
                Some(&author)
            ),
            None,
            "the Block itself reaches the blocked account"
        );
        // The instance actor is bound by no user's blocks.
        assert_eq!(
            check(
                "Create",
                "https://spam.example/inbox",
                "spam.example",
                &none,
                None
            ),
            None
        );
    }
}
