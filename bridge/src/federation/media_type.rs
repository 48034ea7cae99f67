//! Media types the bridge accepts from remote servers.

/// The ActivityStreams JSON-LD profile.
pub const ACTIVITYSTREAMS_PROFILE: &str = "https://www.w3.org/ns/activitystreams";

/// `Accept` for ActivityPub fetches.
pub const ACTIVITY_ACCEPT: &str = r#"application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams""#;

/// `Content-Type` of the activities the bridge posts.
pub const ACTIVITY_CONTENT_TYPE: &str = "application/activity+json";

/// `Accept` for WebFinger.
pub const JRD_ACCEPT: &str = "application/jrd+json, application/json";

/// Whether a `Content-Type` is an ActivityPub document: `application/activity+json`, or
/// `application/ld+json` with the ActivityStreams profile. Plain `application/json` is
/// refused: any server lets users upload such files (Mastodon CVE-2024-25623).
pub fn is_activity_json(content_type: &str) -> bool {
    let (essence, params) = split(content_type);
    match essence.as_str() {
        "application/activity+json" => true,
        "application/ld+json" => params.iter().any(|(name, value)| {
            name == "profile"
                && value
                    .split_ascii_whitespace()
                    .any(|profile| profile == ACTIVITYSTREAMS_PROFILE)
        }),
        _ => false,
    }
}

/// Whether a `Content-Type` is acceptable for a WebFinger answer.
pub fn is_jrd_json(content_type: &str) -> bool {
    matches!(
        split(content_type).0.as_str(),
        "application/jrd+json" | "application/json"
    )
}

/// Lowercased essence and `(name, unquoted value)` parameters.
fn split(content_type: &str) -> (String, Vec<(String, String)>) {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim().to_ascii_lowercase(), value.to_owned()))
        })
        .collect();
    (essence, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_types_need_activity_json_or_the_as_profile() {
        assert!(is_activity_json("application/activity+json"));
        assert!(is_activity_json("Application/Activity+JSON; charset=utf-8"));
        assert!(is_activity_json(
            r#"application/ld+json; profile="https://www.w3.org/ns/activitystreams""#
        ));
        assert!(is_activity_json(
            r#"application/ld+json;profile="http://example/other https://www.w3.org/ns/activitystreams""#
        ));
        assert!(!is_activity_json("application/ld+json"));
        assert!(!is_activity_json(
            r#"application/ld+json; profile="https://example/other""#
        ));
        assert!(!is_activity_json("application/json"));
        assert!(!is_activity_json("text/html"));
        assert!(!is_activity_json(""));
    }

    #[test]
    fn jrd_accepts_jrd_and_plain_json() {
        assert!(is_jrd_json("application/jrd+json; charset=utf-8"));
        assert!(is_jrd_json("application/json"));
        assert!(!is_jrd_json("text/plain"));
    }
}
