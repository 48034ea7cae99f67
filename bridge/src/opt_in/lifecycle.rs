//! The transitions of a user's sharing, each in the caller's transaction: state, keys,
//! outbound activities, audit entry and the message to the platform commit together.

use diesel::ExpressionMethods;
use platform_adapter::events::{self as contract, OutboundPayload, SharingStatusChanged};
use serde::Serialize;
use serde_json::json;

use super::{Gate, Initiator, SharingState, failing_gates, receipt};
use crate::{
    db::{
        AnyConnection, audit, follows, keys, posts,
        posts::FederationState,
        schema::removals,
        users::{self, User},
    },
    error::Error,
    federation::{outbound, urls::Urls},
    settings::SharingSettings,
    to_platform,
};

/// Why sharing could not be turned on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Turning on needs the user's explicit consent.
    ConsentRequired,
    /// Eligibility gates fail.
    Ineligible {
        /// Which.
        gates: Vec<Gate>,
    },
    /// Sharing was turned off recently.
    CoolingDown {
        /// Earliest time (ms) it can be turned on again.
        until: i64,
    },
}

impl Refusal {
    /// A sentence for people.
    pub fn message(&self) -> String {
        match self {
            Self::ConsentRequired => {
                "Turning on fediverse sharing needs your explicit consent.".into()
            }
            Self::Ineligible { gates } => gates
                .iter()
                .map(|g| g.explanation())
                .collect::<Vec<_>>()
                .join(" "),
            Self::CoolingDown { until } => format!(
                "Sharing was turned off recently; it can be turned on again after {}.",
                crate::federation::protocol::rfc3339(*until)
            ),
        }
    }
}

/// What the rules and the context a transition needs.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Eligibility rules and cooldown.
    pub rules: &'a SharingSettings,
    /// URL scheme.
    pub urls: &'a Urls,
    /// Who asked.
    pub initiator: Initiator,
    /// Now (ms).
    pub now: i64,
}

fn gate_names(gates: &[Gate]) -> Vec<String> {
    gates
        .iter()
        .filter_map(|g| serde_json::to_value(g).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn contract_state(state: SharingState) -> contract::SharingState {
    match state {
        SharingState::Off => contract::SharingState::Off,
        SharingState::On => contract::SharingState::On,
        SharingState::Paused => contract::SharingState::Paused,
    }
}

/// Tells the platform the user's sharing state (and the removal receipt, if any).
pub fn notify_status(
    conn: &mut AnyConnection,
    user: &User,
    state: SharingState,
    reason: Option<String>,
    gates: &[Gate],
    now: i64,
) -> Result<(), Error> {
    let removal = if state == SharingState::Off {
        receipt::removal_receipt(conn, user.id)?.map(|r| contract::RemovalReceipt {
            requested: r.requested,
            acknowledged: r.acknowledged,
            failed: r.failed,
            unreachable: r.unreachable,
            complete: r.complete,
        })
    } else {
        None
    };
    let cause = format!(
        "status:{}:{}:{now}:{}",
        user.platform_user_id,
        state.as_str(),
        removal.as_ref().map_or(String::new(), |r| format!(
            "{}/{}/{}/{}",
            r.requested, r.acknowledged, r.failed, r.unreachable
        ))
    );
    to_platform::enqueue(
        conn,
        &cause,
        &user.platform_user_id,
        OutboundPayload::SharingStatusChanged(SharingStatusChanged {
            user_id: to_platform::user_id(&user.platform_user_id)?,
            state: contract_state(state),
            reason,
            failing_gates: gate_names(gates),
            removal,
        }),
        now,
    )?;
    Ok(())
}

fn gates_json(gates: &[Gate]) -> String {
    serde_json::to_string(gates).unwrap_or_else(|_| "[]".into())
}

fn reload(conn: &mut AnyConnection, user: &User) -> Result<User, Error> {
    users::find(conn, user.id)?.ok_or_else(|| Error::Storage("user vanished".into()))
}

/// Turns sharing on after checking consent, cooldown and eligibility. Turning on a user
/// who already shares is a no-op.
pub fn turn_on(
    conn: &mut AnyConnection,
    user: &User,
    consent: bool,
    cx: Context<'_>,
) -> Result<Result<User, Refusal>, Error> {
    if user.sharing() == SharingState::On {
        return Ok(Ok(user.clone()));
    }
    if !consent {
        return Ok(Err(Refusal::ConsentRequired));
    }
    if let Some(until) = user.cooldown_until.filter(|until| *until > cx.now) {
        return Ok(Err(Refusal::CoolingDown { until }));
    }
    let gates = failing_gates(user, cx.rules, cx.now);
    if !gates.is_empty() {
        users::set_failing_gates(conn, user.id, &gates_json(&gates))?;
        return Ok(Err(Refusal::Ineligible { gates }));
    }
    keys::ensure(conn, Some(user.id), cx.now)?;
    users::set_consented(conn, user.id, cx.now)?;
    users::set_sharing_state(conn, user.id, SharingState::On, "[]", cx.now)?;
    audit::record(
        conn,
        Some(user.id),
        "sharing.on",
        cx.initiator,
        &json!({ "consent": true }),
        cx.now,
    )?;
    let user = reload(conn, user)?;
    notify_status(conn, &user, SharingState::On, None, &[], cx.now)?;
    Ok(Ok(user))
}

/// Turns sharing off: `Delete` for every federated post and for the actor, to every server
/// that had them; followers are dropped, the cooldown starts, a removal is opened.
pub fn turn_off(conn: &mut AnyConnection, user: &User, cx: Context<'_>) -> Result<User, Error> {
    if user.sharing() == SharingState::Off {
        return Ok(user.clone());
    }
    for post in posts::all_federated(conn, user.id)? {
        outbound::retract_post(
            conn,
            &post,
            user,
            cx.urls,
            FederationState::Retracted,
            cx.now,
        )?;
    }
    outbound::delete_actor(conn, user, cx.urls, cx.now)?;
    let dropped = follows::remove_all(conn, user.id)?;
    let cooldown_until = cx.now + i64::from(cx.rules.cooldown_days) * 86_400_000;
    users::set_sharing_state(conn, user.id, SharingState::Off, "[]", cx.now)?;
    users::set_opted_out(conn, user.id, cx.now, cooldown_until)?;
    diesel::RunQueryDsl::execute(
        diesel::insert_into(removals::table).values((
            removals::user_id.eq(user.id.0),
            removals::started_at.eq(cx.now),
        )),
        conn,
    )?;
    audit::record(
        conn,
        Some(user.id),
        "sharing.off",
        cx.initiator,
        &json!({ "followers_removed": dropped, "cooldown_until": cooldown_until }),
        cx.now,
    )?;
    let user = reload(conn, user)?;
    notify_status(
        conn,
        &user,
        SharingState::Off,
        Some("turned off".into()),
        &[],
        cx.now,
    )?;
    Ok(user)
}

/// Re-checks eligibility after a profile change: pauses a sharing user who became
/// ineligible and resumes a paused one who is eligible again.
pub fn reevaluate(conn: &mut AnyConnection, user: &User, cx: Context<'_>) -> Result<User, Error> {
    let gates = failing_gates(user, cx.rules, cx.now);
    let next = match (user.sharing(), gates.is_empty()) {
        (SharingState::On, false) => Some((SharingState::Paused, "sharing.paused")),
        (SharingState::Paused, true) => Some((SharingState::On, "sharing.resumed")),
        _ => None,
    };
    let Some((state, action)) = next else {
        users::set_failing_gates(conn, user.id, &gates_json(&gates))?;
        return reload(conn, user);
    };
    users::set_sharing_state(conn, user.id, state, &gates_json(&gates), cx.now)?;
    audit::record(
        conn,
        Some(user.id),
        action,
        cx.initiator,
        &json!({ "failing_gates": gates }),
        cx.now,
    )?;
    let user = reload(conn, user)?;
    // Remote servers learn that the account is (un)available.
    outbound::update_actor(conn, &user, cx.urls, cx.now)?;
    let reason = (!gates.is_empty()).then(|| {
        gates
            .iter()
            .map(|g| g.explanation())
            .collect::<Vec<_>>()
            .join(" ")
    });
    notify_status(conn, &user, state, reason, &gates, cx.now)?;
    Ok(user)
}
