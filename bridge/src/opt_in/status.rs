//! Where a user's sharing stands, as the toggle API and the settings page show it.

use serde::Serialize;

use super::{Gate, SharingState, failing_gates, receipt};
use crate::{
    db::{AnyConnection, follower_list, follows, users::User},
    error::Error,
    federation::{protocol::rfc3339, urls::Urls},
    settings::SharingSettings,
};

/// One failing eligibility gate with what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateStatus {
    /// Which gate.
    pub gate: Gate,
    /// Plain-words explanation.
    pub explanation: &'static str,
}

/// A user's sharing, everything at once.
#[derive(Debug, Clone, Serialize)]
pub struct SharingStatus {
    /// The platform's user id.
    pub user_id: String,
    /// `off`, `on` or `paused`.
    pub state: SharingState,
    /// `@name@domain` as it is (or would be) shared.
    pub handle: String,
    /// The actor URL.
    pub actor: String,
    /// Gates the user fails now (empty: eligible).
    pub failing_gates: Vec<GateStatus>,
    /// Accepted followers.
    pub followers: i64,
    /// Follow requests waiting for approval.
    pub pending_followers: i64,
    /// Sharing cannot be turned on before this time (RFC 3339), while that is in the future.
    pub cooldown_until: Option<String>,
    /// When the user last consented (RFC 3339).
    pub consented_at: Option<String>,
    /// When the state last changed (RFC 3339).
    pub changed_at: Option<String>,
    /// Progress of the last removal, after turning off.
    pub removal: Option<receipt::Receipt>,
}

/// Computes `user`'s status at `now` (ms); gates are evaluated now, not taken from storage.
pub fn load(
    conn: &mut AnyConnection,
    user: &User,
    rules: &SharingSettings,
    urls: &Urls,
    now: i64,
) -> Result<SharingStatus, Error> {
    let gates = failing_gates(user, rules, now)
        .into_iter()
        .map(|gate| GateStatus {
            gate,
            explanation: gate.explanation(),
        })
        .collect();
    Ok(SharingStatus {
        user_id: user.platform_user_id.clone(),
        state: user.sharing(),
        handle: format!("@{}", urls.handle(&user.username)),
        actor: urls.actor(&user.platform_user_id).to_string(),
        failing_gates: gates,
        followers: follows::count_accepted(conn, user.id)?,
        pending_followers: follower_list::count_pending(conn, user.id)?,
        cooldown_until: user
            .cooldown_until
            .filter(|until| *until > now)
            .map(rfc3339),
        consented_at: user.consented_at.map(rfc3339),
        changed_at: user.sharing_changed_at.map(rfc3339),
        removal: receipt::removal_receipt(conn, user.id)?,
    })
}
