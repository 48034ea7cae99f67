//! Platform events as the platform sends them (JSON envelopes), for tests.

use serde_json::{Value, json};

fn envelope(id: &str, kind: &str, order_key: &str, occurred_at: &str, data: Value) -> Value {
    json!({
        "id": id,
        "type": kind,
        "occurred_at": occurred_at,
        "schema_version": 1,
        "order_key": order_key,
        "data": data,
    })
}

/// Eligibility facts of a user.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// Public profile.
    pub public: bool,
    /// Adult.
    pub adult: bool,
    /// Suspended.
    pub suspended: bool,
}

/// Facts that pass every gate.
pub const ELIGIBLE: Facts = Facts {
    public: true,
    adult: true,
    suspended: false,
};

/// `user.created` / `user.updated` with the given eligibility facts.
pub fn user(
    id: &str,
    kind: &str,
    uid: &str,
    username: &str,
    facts: Facts,
    occurred_at: &str,
) -> Value {
    envelope(
        id,
        kind,
        uid,
        occurred_at,
        json!({
            "user_id": uid,
            "username": username,
            "display_name": format!("{username} display"),
            "bio": format!("Bio of {username}"),
            "avatar_url": null,
            "header_url": null,
            "profile_url": format!("https://platform.example/@{username}"),
            "fields": [],
            "language": "en",
            "public_profile": facts.public,
            "adult": facts.adult,
            "suspended": facts.suspended,
            "account_created_at": "2020-01-01T00:00:00Z",
        }),
    )
}

/// An eligible `user.created`.
pub fn eligible_user(id: &str, uid: &str, username: &str) -> Value {
    user(
        id,
        "user.created",
        uid,
        username,
        ELIGIBLE,
        "2026-01-01T00:00:00Z",
    )
}

/// `sharing.turned_on` with consent.
pub fn sharing_on(id: &str, uid: &str) -> Value {
    envelope(
        id,
        "sharing.turned_on",
        uid,
        "2026-01-01T00:00:01Z",
        json!({ "user_id": uid, "consent": true }),
    )
}

/// `sharing.turned_off`.
pub fn sharing_off(id: &str, uid: &str) -> Value {
    envelope(
        id,
        "sharing.turned_off",
        uid,
        "2026-01-01T00:00:09Z",
        json!({ "user_id": uid }),
    )
}

/// `post.created` / `post.updated`.
pub fn post(id: &str, kind: &str, uid: &str, pid: &str, text: &str, visibility: &str) -> Value {
    envelope(
        id,
        kind,
        uid,
        "2026-01-01T00:00:02Z",
        json!({
            "post_id": pid,
            "author_id": uid,
            "text": text,
            "visibility": visibility,
            "age_restricted": false,
            "reply_to": null,
            "quote_of": null,
            "media": [],
            "mentions": [],
            "hashtags": ["rust"],
            "content_warning": null,
            "sensitive": false,
            "language": "en",
            "reply_policy": "everyone",
            "quote_policy": "everyone",
            "created_via_api": false,
            "created_at": "2026-01-01T00:00:02Z",
            "edited_at": null,
        }),
    )
}

/// `post.deleted`.
pub fn post_deleted(id: &str, uid: &str, pid: &str) -> Value {
    envelope(
        id,
        "post.deleted",
        uid,
        "2026-01-01T00:00:03Z",
        json!({ "post_id": pid, "author_id": uid }),
    )
}

/// `report.created`: `reporter` reports the remote actor `target` and its posts `objects`.
pub fn report(
    id: &str,
    report_id: &str,
    reporter: &str,
    target: &str,
    objects: &[&str],
    comment: &str,
    forward: bool,
) -> Value {
    envelope(
        id,
        "report.created",
        reporter,
        "2026-03-14T09:26:53Z",
        json!({
            "report_id": report_id,
            "reporter_id": reporter,
            "target": target,
            "object_urls": objects,
            "comment": comment,
            "forward": forward,
        }),
    )
}
