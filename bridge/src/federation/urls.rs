//! The URL scheme of everything the bridge serves, and recognising our own URLs.
//!
//! Actor and object URLs carry the platform's ids, not handles, so that a user who changes
//! their handle keeps their followers: the id stays, WebFinger and `preferredUsername` follow.

use url::Url;

use crate::{error::Error, settings::FederationSettings};

/// Builds and parses the bridge's URLs.
#[derive(Debug, Clone)]
pub struct Urls {
    base: Url,
    domain: String,
}

/// A local thing a URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalObject {
    /// A user's actor, by platform user id.
    Actor(String),
    /// A post's Note, by platform post id.
    Note(String),
    /// A stored outbound activity, by its uuid.
    Activity(String),
    /// The instance actor.
    InstanceActor,
}

impl Urls {
    /// From validated settings.
    pub fn new(settings: &FederationSettings) -> Result<Self, Error> {
        let mut base = settings.base()?;
        // A base with a path prefix keeps it; a lone trailing slash is dropped.
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&path);
        Ok(Self {
            base,
            domain: settings.domain.to_lowercase(),
        })
    }

    fn with_segments(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        url
    }

    /// Handle domain (`@name@domain`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Base URL without trailing slash.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Host (and port) of the base URL: what the `Host` header of requests to us carries.
    pub fn base_authority(&self) -> String {
        match self.base.port() {
            Some(port) => format!("{}:{port}", self.base.host_str().unwrap_or_default()),
            None => self.base.host_str().unwrap_or_default().to_owned(),
        }
    }

    /// `name@domain`.
    pub fn handle(&self, username: &str) -> String {
        format!("{username}@{}", self.domain)
    }

    /// A user's actor.
    pub fn actor(&self, platform_user_id: &str) -> Url {
        self.with_segments(&["users", platform_user_id])
    }

    /// A user's key id.
    pub fn key_id(&self, platform_user_id: &str) -> Url {
        let mut url = self.actor(platform_user_id);
        url.set_fragment(Some("main-key"));
        url
    }

    /// A user's personal inbox.
    pub fn inbox(&self, platform_user_id: &str) -> Url {
        self.with_segments(&["users", platform_user_id, "inbox"])
    }

    /// A user's outbox.
    pub fn outbox(&self, platform_user_id: &str) -> Url {
        self.with_segments(&["users", platform_user_id, "outbox"])
    }

    /// A user's followers collection.
    pub fn followers(&self, platform_user_id: &str) -> Url {
        self.with_segments(&["users", platform_user_id, "followers"])
    }

    /// A user's following collection (always empty: platform users follow nobody remote).
    pub fn following(&self, platform_user_id: &str) -> Url {
        self.with_segments(&["users", platform_user_id, "following"])
    }

    /// A user's pinned posts.
    pub fn featured(&self, platform_user_id: &str) -> Url {
        self.with_segments(&["users", platform_user_id, "featured"])
    }

    /// The shared inbox.
    pub fn shared_inbox(&self) -> Url {
        self.with_segments(&["inbox"])
    }

    /// The instance actor (signs fetches).
    pub fn instance_actor(&self) -> Url {
        self.with_segments(&["actor"])
    }

    /// The instance actor's key id.
    pub fn instance_key_id(&self) -> Url {
        let mut url = self.instance_actor();
        url.set_fragment(Some("main-key"));
        url
    }

    /// A post's Note.
    pub fn note(&self, platform_post_id: &str) -> Url {
        self.with_segments(&["posts", platform_post_id])
    }

    /// The `Create` that first published a post (deterministic, so a retried publish
    /// produces the same activity id).
    pub fn create_activity(&self, platform_post_id: &str) -> Url {
        self.with_segments(&["posts", platform_post_id, "activity"])
    }

    /// A post's replies collection.
    pub fn replies(&self, platform_post_id: &str) -> Url {
        self.with_segments(&["posts", platform_post_id, "replies"])
    }

    /// A stored outbound activity.
    pub fn activity(&self, uuid: &str) -> Url {
        self.with_segments(&["activities", uuid])
    }

    /// A hashtag page.
    pub fn tag(&self, name: &str) -> Url {
        self.with_segments(&["tags", &name.to_lowercase()])
    }

    /// WebFinger endpoint.
    pub fn webfinger(&self) -> Url {
        self.with_segments(&[".well-known", "webfinger"])
    }

    /// Remote-follow landing page (`subscribe` template target).
    pub fn authorize_interaction(&self) -> Url {
        self.with_segments(&["authorize_interaction"])
    }

    /// Whether `url` is on our own origin or handle domain: such ids are never accepted
    /// from remote servers.
    pub fn is_local(&self, url: &Url) -> bool {
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_lowercase();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let base_host = self.base.host_str().unwrap_or_default().to_lowercase();
        // A base or handle domain with an explicit port (local trials, where several
        // servers share `localhost`) is told apart from its neighbours by the port.
        let same_host = |ours: &str| {
            if ours.contains(':') {
                authority == ours
            } else {
                host == ours
            }
        };
        let base_authority = self.base_authority().to_lowercase();
        same_host(if self.base.port().is_some() {
            &base_authority
        } else {
            &base_host
        }) || same_host(&self.domain)
    }

    /// What a URL on our origin points at.
    pub fn parse_local(&self, url: &Url) -> Option<LocalObject> {
        if url.origin() != self.base.origin() {
            return None;
        }
        let base_segments: Vec<&str> = self
            .base
            .path_segments()?
            .filter(|s| !s.is_empty())
            .collect();
        let segments: Vec<String> = url.path_segments()?.map(percent_decode).collect();
        let rest = segments.get(base_segments.len()..)?;
        match rest {
            [kind, id] if kind == "users" => Some(LocalObject::Actor(id.clone())),
            [kind, id] if kind == "posts" => Some(LocalObject::Note(id.clone())),
            [kind, id] if kind == "activities" => Some(LocalObject::Activity(id.clone())),
            [kind] if kind == "actor" => Some(LocalObject::InstanceActor),
            _ => None,
        }
    }
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| segment.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(base: &str, domain: &str) -> Urls {
        Urls::new(&FederationSettings {
            base_url: base.into(),
            domain: domain.into(),
            allow_private_addresses: false,
            signature_window_secs: 3600,
        })
        .expect("valid")
    }

    #[test]
    fn ids_are_encoded_and_round_trip() {
        let u = urls("https://fedi.example/", "example");
        let actor = u.actor("id with/slash");
        assert_eq!(
            actor.as_str(),
            "https://fedi.example/users/id%20with%2Fslash"
        );
        assert_eq!(
            u.parse_local(&actor),
            Some(LocalObject::Actor("id with/slash".into()))
        );
        assert_eq!(
            u.key_id("42").as_str(),
            "https://fedi.example/users/42#main-key"
        );
        assert_eq!(u.note("p+1").as_str(), "https://fedi.example/posts/p+1");
        assert_eq!(
            u.parse_local(&u.note("p+1")),
            Some(LocalObject::Note("p+1".into()))
        );
    }

    #[test]
    fn a_base_path_prefix_is_kept() {
        let u = urls("https://platform.example/fedi", "platform.example");
        assert_eq!(
            u.actor("1").as_str(),
            "https://platform.example/fedi/users/1"
        );
        assert_eq!(
            u.parse_local(&u.actor("1")),
            Some(LocalObject::Actor("1".into()))
        );
        assert_eq!(
            u.shared_inbox().as_str(),
            "https://platform.example/fedi/inbox"
        );
    }

    #[test]
    fn local_means_our_host_or_handle_domain() {
        let u = urls("https://fedi.example", "example.org");
        for local in [
            "https://fedi.example/x",
            "https://FEDI.example./y",
            "https://example.org/z",
        ] {
            assert!(u.is_local(&Url::parse(local).expect("url")), "{local}");
        }
        assert!(!u.is_local(&Url::parse("https://evil.example/x").expect("url")));

        let trial = urls("http://localhost:8080", "localhost:8080");
        assert!(trial.is_local(&Url::parse("http://localhost:8080/users/1").expect("url")));
        assert!(!trial.is_local(&Url::parse("http://localhost:9090/users/1").expect("url")));
        assert_eq!(
            u.parse_local(&Url::parse("https://evil.example/users/1").expect("url")),
            None
        );
    }
}
