//! Eligibility gates: the conditions a user must meet to share, checked on turning on and
//! on every profile change.

use serde::{Deserialize, Serialize};

use crate::{db::users::User, settings::SharingSettings};

/// One eligibility condition that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// The profile must be public.
    PublicProfile,
    /// The user must be an adult.
    Adult,
    /// The user must not be suspended.
    NotSuspended,
    /// The account must be old enough.
    AccountAge,
    /// The platform deleted the account.
    AccountExists,
}

impl Gate {
    /// What the user can do about it, in plain words (shown on the settings page).
    pub fn explanation(self) -> &'static str {
        match self {
            Self::PublicProfile => {
                "Your profile is private. Make it public to share on the fediverse."
            }
            Self::Adult => "Fediverse sharing is only available to adults.",
            Self::NotSuspended => {
                "Your account is suspended. Sharing resumes when the suspension ends."
            }
            Self::AccountAge => {
                "Your account is too new. Sharing becomes available once it is older."
            }
            Self::AccountExists => "This account no longer exists on the platform.",
        }
    }
}

/// The gates `user` fails under `rules` at time `now` (ms); empty means eligible.
pub fn failing_gates(user: &User, rules: &SharingSettings, now: i64) -> Vec<Gate> {
    let mut failing = Vec::new();
    if user.deleted_at.is_some() {
        failing.push(Gate::AccountExists);
    }
    if rules.require_public_profile && !user.is_public {
        failing.push(Gate::PublicProfile);
    }
    if rules.require_adult && !user.is_adult {
        failing.push(Gate::Adult);
    }
    if rules.require_not_suspended && user.is_suspended {
        failing.push(Gate::NotSuspended);
    }
    if rules.min_account_age_days > 0 {
        let min_age_ms = i64::from(rules.min_account_age_days) * 86_400_000;
        // An unknown creation date cannot prove the age, so the gate fails.
        let old_enough = user
            .account_created_at
            .is_some_and(|created| now.saturating_sub(created) >= min_age_ms);
        if !old_enough {
            failing.push(Gate::AccountAge);
        }
    }
    failing
}
