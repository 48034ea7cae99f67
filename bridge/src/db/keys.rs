//! Key pairs of local actors (users and the instance actor).

use diesel::prelude::*;

use super::{AnyConnection, schema::actor_keys, users::UserId};
use crate::error::Error;

/// A stored key pair.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = actor_keys)]
pub struct ActorKey {
    /// Row id.
    pub id: i64,
    /// Owner; `None` is the instance actor.
    pub user_id: Option<i64>,
    /// SPKI PEM, served in actor documents.
    pub public_key_pem: String,
    /// PKCS#8 PEM; never served.
    pub private_key_pem: String,
    /// Creation (ms).
    pub created_at: i64,
    /// Retirement (ms), after a rotation.
    pub retired_at: Option<i64>,
}

/// The current key of `owner` (`None` = instance actor).
pub fn active(conn: &mut AnyConnection, owner: Option<UserId>) -> Result<Option<ActorKey>, Error> {
    let query = actor_keys::table
        .filter(actor_keys::retired_at.is_null())
        .select(ActorKey::as_select())
        .order(actor_keys::id.desc());
    let key = match owner {
        Some(user) => query.filter(actor_keys::user_id.eq(user.0)).first(conn),
        None => query.filter(actor_keys::user_id.is_null()).first(conn),
    };
    Ok(key.optional()?)
}

/// Stores a new key pair for `owner`.
pub fn insert(
    conn: &mut AnyConnection,
    owner: Option<UserId>,
    public_key_pem: &str,
    private_key_pem: &str,
    now: i64,
) -> Result<(), Error> {
    diesel::insert_into(actor_keys::table)
        .values((
            actor_keys::user_id.eq(owner.map(|u| u.0)),
            actor_keys::public_key_pem.eq(public_key_pem),
            actor_keys::private_key_pem.eq(private_key_pem),
            actor_keys::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The current key of `owner`, generated (RSA-2048) and stored when there is none yet.
pub fn ensure(
    conn: &mut AnyConnection,
    owner: Option<UserId>,
    now: i64,
) -> Result<ActorKey, Error> {
    if let Some(key) = active(conn, owner)? {
        return Ok(key);
    }
    let pair = crate::federation::keys::generate_rsa_keypair()?;
    insert(
        conn,
        owner,
        &pair.public_key_pem,
        &pair.private_key_pem,
        now,
    )?;
    active(conn, owner)?.ok_or_else(|| Error::Storage("key vanished after insert".into()))
}
