//! Platform users as the bridge knows them: profile, eligibility facts and sharing state.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::{AnyConnection, schema::users};
use crate::{error::Error, opt_in::SharingState};

/// The bridge's own id of a user (stable, never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserId(pub i64);

impl From<i64> for UserId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

/// One name/value pair of a profile, shown as a `PropertyValue` on the actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileField {
    /// Label.
    pub name: String,
    /// Value (plain text; URLs become links when rendered).
    pub value: String,
}

/// A stored user.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    /// Internal id.
    #[diesel(deserialize_as = i64)]
    pub id: UserId,
    /// The platform's id of the user; appears in actor URLs, so it never changes.
    pub platform_user_id: String,
    /// Handle local part as the platform spells it.
    pub username: String,
    /// Lower-cased handle, unique.
    pub username_lower: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Bio, plain text.
    pub bio: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// Header image URL.
    pub header_url: Option<String>,
    /// Profile page on the platform.
    pub profile_url: Option<String>,
    /// JSON list of [`ProfileField`].
    pub profile_fields: String,
    /// BCP 47 language tag.
    pub language: Option<String>,
    /// Eligibility fact: the profile is public.
    pub is_public: bool,
    /// Eligibility fact: the user is an adult.
    pub is_adult: bool,
    /// Eligibility fact: the platform suspended the user.
    pub is_suspended: bool,
    /// When the platform account was created (ms).
    pub account_created_at: Option<i64>,
    /// `off`, `on` or `paused`.
    pub sharing_state: String,
    /// Last change of `sharing_state` (ms).
    pub sharing_changed_at: Option<i64>,
    /// When the user last consented to sharing (ms).
    pub consented_at: Option<i64>,
    /// When the user last turned sharing off (ms).
    pub opted_out_at: Option<i64>,
    /// Sharing cannot be turned on again before this time (ms).
    pub cooldown_until: Option<i64>,
    /// JSON list of the gates that failed at the last evaluation.
    pub failing_gates: String,
    /// Shown in directories (`discoverable`).
    pub discoverable: bool,
    /// Posts may be indexed by search (`indexable`).
    pub indexable: bool,
    /// Follows need the user's approval.
    pub manually_approves_followers: bool,
    /// Actor this account moved to.
    pub moved_to: Option<String>,
    /// JSON list of alias actor URLs.
    pub also_known_as: String,
    /// When the platform deleted the user (ms).
    pub deleted_at: Option<i64>,
    /// `occurred_at` of the last platform event applied (ms), for ordering.
    pub last_event_at: Option<i64>,
    /// Row creation (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
}

impl User {
    /// Current sharing state.
    pub fn sharing(&self) -> SharingState {
        SharingState::parse(&self.sharing_state)
    }

    /// Profile fields, decoded.
    pub fn fields(&self) -> Vec<ProfileField> {
        serde_json::from_str(&self.profile_fields).unwrap_or_default()
    }

    /// Aliases, decoded.
    pub fn aliases(&self) -> Vec<String> {
        serde_json::from_str(&self.also_known_as).unwrap_or_default()
    }

    /// Whether the user turned sharing off after having it on (their actor is gone).
    pub fn opted_out(&self) -> bool {
        self.sharing() == SharingState::Off && self.opted_out_at.is_some()
    }
}

/// What the platform says about a user (from `user.created` / `user.updated`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileInput {
    /// The platform's id.
    pub platform_user_id: String,
    /// Handle local part.
    pub username: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Bio, plain text.
    pub bio: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// Header URL.
    pub header_url: Option<String>,
    /// Profile page URL.
    pub profile_url: Option<String>,
    /// Profile fields.
    pub fields: Vec<ProfileField>,
    /// Language.
    pub language: Option<String>,
    /// Eligibility: public profile.
    pub is_public: bool,
    /// Eligibility: adult.
    pub is_adult: bool,
    /// Eligibility: suspended.
    pub is_suspended: bool,
    /// Account creation time (ms).
    pub account_created_at: Option<i64>,
}

/// How an upsert changed a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileChange {
    /// The user was new.
    pub created: bool,
    /// Something remote servers show changed (name, bio, images, fields, handle).
    pub public_profile_changed: bool,
    /// An eligibility fact changed.
    pub eligibility_changed: bool,
}

/// Inserts or updates a user from platform facts.
pub fn upsert_profile(
    conn: &mut AnyConnection,
    input: &ProfileInput,
    now: i64,
) -> Result<(User, ProfileChange), Error> {
    let fields = serde_json::to_string(&input.fields).map_err(|e| Error::Storage(e.to_string()))?;
    let existing = find_by_platform_id(conn, &input.platform_user_id)?;
    let change = match &existing {
        None => {
            diesel::insert_into(users::table)
                .values((
                    users::platform_user_id.eq(&input.platform_user_id),
                    users::username.eq(&input.username),
                    users::username_lower.eq(input.username.to_lowercase()),
                    users::display_name.eq(&input.display_name),
                    users::bio.eq(&input.bio),
                    users::avatar_url.eq(&input.avatar_url),
                    users::header_url.eq(&input.header_url),
                    users::profile_url.eq(&input.profile_url),
                    users::profile_fields.eq(&fields),
                    users::language.eq(&input.language),
                    users::is_public.eq(input.is_public),
                    users::is_adult.eq(input.is_adult),
                    users::is_suspended.eq(input.is_suspended),
                    users::account_created_at.eq(input.account_created_at),
                    users::created_at.eq(now),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
            ProfileChange {
                created: true,
                public_profile_changed: true,
                eligibility_changed: true,
            }
        }
        Some(user) => {
            let public_profile_changed = user.username != input.username
                || user.display_name != input.display_name
                || user.bio != input.bio
                || user.avatar_url != input.avatar_url
                || user.header_url != input.header_url
                || user.profile_url != input.profile_url
                || user.profile_fields != fields
                || user.language != input.language;
            let eligibility_changed = user.is_public != input.is_public
                || user.is_adult != input.is_adult
                || user.is_suspended != input.is_suspended
                || user.account_created_at != input.account_created_at;
            diesel::update(users::table.filter(users::id.eq(user.id.0)))
                .set((
                    users::username.eq(&input.username),
                    users::username_lower.eq(input.username.to_lowercase()),
                    users::display_name.eq(&input.display_name),
                    users::bio.eq(&input.bio),
                    users::avatar_url.eq(&input.avatar_url),
                    users::header_url.eq(&input.header_url),
                    users::profile_url.eq(&input.profile_url),
                    users::profile_fields.eq(&fields),
                    users::language.eq(&input.language),
                    users::is_public.eq(input.is_public),
                    users::is_adult.eq(input.is_adult),
                    users::is_suspended.eq(input.is_suspended),
                    users::account_created_at.eq(input.account_created_at),
                    users::deleted_at.eq(None::<i64>),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
            ProfileChange {
                created: false,
                public_profile_changed,
                eligibility_changed,
            }
        }
    };
    let user = find_by_platform_id(conn, &input.platform_user_id)?
        .ok_or_else(|| Error::Storage("user vanished during upsert".into()))?;
    Ok((user, change))
}

/// The user with this platform id.
pub fn find_by_platform_id(conn: &mut AnyConnection, id: &str) -> Result<Option<User>, Error> {
    Ok(users::table
        .filter(users::platform_user_id.eq(id))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// The users with these platform ids (those that exist), in one query.
pub fn find_many_by_platform_ids(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> Result<Vec<User>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(users::table
        .filter(users::platform_user_id.eq_any(ids))
        .select(User::as_select())
        .load(conn)?)
}

/// The user with this internal id.
pub fn find(conn: &mut AnyConnection, id: UserId) -> Result<Option<User>, Error> {
    Ok(users::table
        .find(id.0)
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// The user with this handle (case-insensitive).
pub fn find_by_username(conn: &mut AnyConnection, username: &str) -> Result<Option<User>, Error> {
    Ok(users::table
        .filter(users::username_lower.eq(username.to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// Records the state of sharing and what goes with it.
pub fn set_sharing_state(
    conn: &mut AnyConnection,
    id: UserId,
    state: SharingState,
    failing_gates: &str,
    now: i64,
) -> Result<(), Error> {
    diesel::update(users::table.find(id.0))
        .set((
            users::sharing_state.eq(state.as_str()),
            users::sharing_changed_at.eq(now),
            users::failing_gates.eq(failing_gates),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records the failing gates without a state change.
pub fn set_failing_gates(
    conn: &mut AnyConnection,
    id: UserId,
    failing_gates: &str,
) -> Result<(), Error> {
    diesel::update(users::table.find(id.0))
        .set(users::failing_gates.eq(failing_gates))
        .execute(conn)?;
    Ok(())
}

/// Records consent (turning on).
pub fn set_consented(conn: &mut AnyConnection, id: UserId, now: i64) -> Result<(), Error> {
    diesel::update(users::table.find(id.0))
        .set((
            users::consented_at.eq(now),
            users::opted_out_at.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records turning off and the cooldown that follows.
pub fn set_opted_out(
    conn: &mut AnyConnection,
    id: UserId,
    now: i64,
    cooldown_until: i64,
) -> Result<(), Error> {
    diesel::update(users::table.find(id.0))
        .set((
            users::opted_out_at.eq(now),
            users::cooldown_until.eq(cooldown_until),
        ))
        .execute(conn)?;
    Ok(())
}

/// Marks the user deleted by the platform.
pub fn mark_deleted(conn: &mut AnyConnection, id: UserId, now: i64) -> Result<(), Error> {
    diesel::update(users::table.find(id.0))
        .set((users::deleted_at.eq(now), users::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// Remembers the time of the last applied event, for per-user ordering.
pub fn set_last_event_at(conn: &mut AnyConnection, id: UserId, at: i64) -> Result<(), Error> {
    diesel::update(users::table.find(id.0))
        .set(users::last_event_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// How many users currently share (for NodeInfo).
pub fn count_sharing(conn: &mut AnyConnection) -> Result<i64, Error> {
    Ok(users::table
        .filter(users::sharing_state.eq(SharingState::On.as_str()))
        .count()
        .get_result(conn)?)
}
