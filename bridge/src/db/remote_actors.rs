//! Remote ActivityPub actors we fetched or heard from.

use diesel::prelude::*;

use super::{AnyConnection, schema::remote_actors};
use crate::error::Error;

/// The bridge's id of a remote actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteActorId(pub i64);

impl From<i64> for RemoteActorId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

/// A stored remote actor.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = remote_actors)]
pub struct RemoteActor {
    /// Row id.
    #[diesel(deserialize_as = i64)]
    pub id: RemoteActorId,
    /// Actor URL (its ActivityPub id).
    pub ap_id: String,
    /// Canonical host of `ap_id`.
    pub host: String,
    /// `Person`, `Service`, `Application`, …
    pub kind: String,
    /// Handle local part.
    pub preferred_username: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Profile page.
    pub url: Option<String>,
    /// Avatar.
    pub icon_url: Option<String>,
    /// Personal inbox.
    pub inbox: String,
    /// Shared inbox, when offered.
    pub shared_inbox: Option<String>,
    /// Id of its public key.
    pub public_key_id: Option<String>,
    /// Its public key.
    pub public_key_pem: Option<String>,
    /// Where it moved.
    pub moved_to: Option<String>,
    /// Last fetch (ms).
    pub fetched_at: i64,
    /// When it was deleted (ms).
    pub deleted_at: Option<i64>,
}

impl RemoteActor {
    /// Where deliveries to this actor go: the shared inbox when offered.
    pub fn delivery_inbox(&self) -> &str {
        self.shared_inbox.as_deref().unwrap_or(&self.inbox)
    }

    /// `@name@host` when the name is known.
    pub fn handle(&self) -> String {
        match &self.preferred_username {
            Some(name) => format!("@{name}@{}", self.host),
            None => self.ap_id.clone(),
        }
    }
}

/// Values to store for a remote actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteActorInput {
    /// Actor URL.
    pub ap_id: String,
    /// Canonical host.
    pub host: String,
    /// Actor type.
    pub kind: String,
    /// Handle local part.
    pub preferred_username: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Profile page.
    pub url: Option<String>,
    /// Avatar.
    pub icon_url: Option<String>,
    /// Inbox.
    pub inbox: String,
    /// Shared inbox.
    pub shared_inbox: Option<String>,
    /// Key id.
    pub public_key_id: Option<String>,
    /// Key.
    pub public_key_pem: Option<String>,
    /// Moved to.
    pub moved_to: Option<String>,
}

/// Inserts or refreshes a remote actor, in one statement.
///
/// `INSERT … ON CONFLICT DO UPDATE` rather than an update followed by an insert: two first
/// requests of the same new actor arrive together often (a server delivering to several
/// inboxes at once), and both would insert.
pub fn upsert(
    conn: &mut AnyConnection,
    input: &RemoteActorInput,
    now: i64,
) -> Result<RemoteActor, Error> {
    use diesel::upsert::excluded;
    let values = (
        remote_actors::ap_id.eq(&input.ap_id),
        remote_actors::host.eq(&input.host),
        remote_actors::kind.eq(&input.kind),
        remote_actors::preferred_username.eq(&input.preferred_username),
        remote_actors::name.eq(&input.name),
        remote_actors::url.eq(&input.url),
        remote_actors::icon_url.eq(&input.icon_url),
        remote_actors::inbox.eq(&input.inbox),
        remote_actors::shared_inbox.eq(&input.shared_inbox),
        remote_actors::public_key_id.eq(&input.public_key_id),
        remote_actors::public_key_pem.eq(&input.public_key_pem),
        remote_actors::moved_to.eq(&input.moved_to),
        remote_actors::fetched_at.eq(now),
        remote_actors::deleted_at.eq(None::<i64>),
    );
    let refresh = (
        remote_actors::host.eq(excluded(remote_actors::host)),
        remote_actors::kind.eq(excluded(remote_actors::kind)),
        remote_actors::preferred_username.eq(excluded(remote_actors::preferred_username)),
        remote_actors::name.eq(excluded(remote_actors::name)),
        remote_actors::url.eq(excluded(remote_actors::url)),
        remote_actors::icon_url.eq(excluded(remote_actors::icon_url)),
        remote_actors::inbox.eq(excluded(remote_actors::inbox)),
        remote_actors::shared_inbox.eq(excluded(remote_actors::shared_inbox)),
        remote_actors::public_key_id.eq(excluded(remote_actors::public_key_id)),
        remote_actors::public_key_pem.eq(excluded(remote_actors::public_key_pem)),
        remote_actors::moved_to.eq(excluded(remote_actors::moved_to)),
        remote_actors::fetched_at.eq(excluded(remote_actors::fetched_at)),
        remote_actors::deleted_at.eq(None::<i64>),
    );
    Ok(
        with_backend!(conn, c => diesel::insert_into(remote_actors::table)
            .values(values)
            .on_conflict(remote_actors::ap_id)
            .do_update()
            .set(refresh)
            .returning(RemoteActor::as_returning())
            .get_result(c))?,
    )
}

/// The actor with this URL.
pub fn find_by_ap_id(conn: &mut AnyConnection, ap_id: &str) -> Result<Option<RemoteActor>, Error> {
    Ok(remote_actors::table
        .filter(remote_actors::ap_id.eq(ap_id))
        .select(RemoteActor::as_select())
        .first(conn)
        .optional()?)
}

/// The actor owning this key id.
pub fn find_by_key_id(
    conn: &mut AnyConnection,
    key_id: &str,
) -> Result<Option<RemoteActor>, Error> {
    Ok(remote_actors::table
        .filter(remote_actors::public_key_id.eq(key_id))
        .select(RemoteActor::as_select())
        .first(conn)
        .optional()?)
}

/// The actor with this row id.
pub fn find(conn: &mut AnyConnection, id: RemoteActorId) -> Result<Option<RemoteActor>, Error> {
    Ok(remote_actors::table
        .find(id.0)
        .select(RemoteActor::as_select())
        .first(conn)
        .optional()?)
}

/// Marks an actor deleted (its server sent `Delete` for it).
pub fn mark_deleted(conn: &mut AnyConnection, id: RemoteActorId, now: i64) -> Result<(), Error> {
    diesel::update(remote_actors::table.find(id.0))
        .set(remote_actors::deleted_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Records that an actor moved.
pub fn set_moved_to(
    conn: &mut AnyConnection,
    id: RemoteActorId,
    target: &str,
) -> Result<(), Error> {
    diesel::update(remote_actors::table.find(id.0))
        .set(remote_actors::moved_to.eq(target))
        .execute(conn)?;
    Ok(())
}
