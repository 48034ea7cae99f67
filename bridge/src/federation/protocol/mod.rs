//! ActivityStreams documents the bridge serves and sends, as typed structs.

pub mod activity;
pub mod actor;
pub mod collection;
pub mod context;
pub mod nodeinfo;
pub mod note;
pub mod webfinger;

/// The public audience.
pub const PUBLIC: &str = "https://www.w3.org/ns/activitystreams#Public";

/// Media type of ActivityPub documents.
pub const ACTIVITY_JSON: &str = "application/activity+json";

/// The other media type ActivityPub allows.
pub const LD_JSON_AS: &str =
    r#"application/ld+json; profile="https://www.w3.org/ns/activitystreams""#;

/// Formats a millisecond timestamp as RFC 3339 with seconds precision, as Mastodon does.
pub fn rfc3339(millis: i64) -> String {
    chrono::DateTime::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
