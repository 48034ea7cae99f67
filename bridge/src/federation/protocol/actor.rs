//! Actor documents: one `Person` per sharing user, and the instance `Application`.

use serde::Serialize;

use super::{context::Context, rfc3339};
use crate::{
    db::users::User,
    federation::{content, urls::Urls},
    opt_in::SharingState,
};

/// Actor types we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ActorType {
    /// A platform user.
    Person,
    /// The instance actor.
    Application,
}

/// An image (avatar or header).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Always `Image`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// MIME type when the extension tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<&'static str>,
    /// Where it is.
    pub url: String,
}

impl Image {
    fn new(url: &str) -> Self {
        Self {
            kind: "Image",
            media_type: media_type_from_extension(url),
            url: url.to_owned(),
        }
    }
}

fn media_type_from_extension(url: &str) -> Option<&'static str> {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_lowercase();
    match path.rsplit('.').next()? {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "avif" => Some("image/avif"),
        _ => None,
    }
}

/// A profile field.
#[derive(Debug, Clone, Serialize)]
pub struct PropertyValue {
    /// Always `PropertyValue`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Label (plain text).
    pub name: String,
    /// Value (HTML).
    pub value: String,
}

/// Endpoints of an actor.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// The shared inbox.
    pub shared_inbox: String,
}

/// The public key block.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKey {
    /// Key id (`actor#main-key`).
    pub id: String,
    /// The actor.
    pub owner: String,
    /// SPKI PEM.
    pub public_key_pem: String,
}

/// An actor document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// Context.
    #[serde(rename = "@context")]
    pub context: Context,
    /// Actor URL.
    pub id: String,
    /// Type.
    #[serde(rename = "type")]
    pub kind: ActorType,
    /// Handle local part.
    pub preferred_username: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Bio as HTML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Profile page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Avatar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<Image>,
    /// Header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// Profile fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachment: Vec<PropertyValue>,
    /// Account creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// Personal inbox.
    pub inbox: String,
    /// Outbox.
    pub outbox: String,
    /// Followers collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followers: Option<String>,
    /// Following collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub following: Option<String>,
    /// Pinned posts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub featured: Option<String>,
    /// Shared inbox.
    pub endpoints: Endpoints,
    /// Key.
    pub public_key: PublicKey,
    /// Listed in directories.
    pub discoverable: bool,
    /// Posts may be indexed.
    pub indexable: bool,
    /// Follows need approval.
    pub manually_approves_followers: bool,
    /// Aliases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_known_as: Vec<String>,
    /// New account after a Move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
    /// Set while sharing is paused: remote servers show the account as unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,
}

impl Actor {
    /// The `Person` of a user who shares (or is paused: then the profile is withheld).
    pub fn person(user: &User, public_key_pem: &str, urls: &Urls) -> Self {
        let uid = &user.platform_user_id;
        let id = urls.actor(uid).to_string();
        let paused = user.sharing() == SharingState::Paused;
        Self {
            context: Context,
            id: id.clone(),
            kind: ActorType::Person,
            preferred_username: user.username.clone(),
            name: user.display_name.clone().filter(|_| !paused),
            summary: user
                .bio
                .as_deref()
                .map(content::render_plain)
                .filter(|_| !paused),
            url: user.profile_url.clone().filter(|_| !paused),
            icon: user
                .avatar_url
                .as_deref()
                .map(Image::new)
                .filter(|_| !paused),
            image: user
                .header_url
                .as_deref()
                .map(Image::new)
                .filter(|_| !paused),
            attachment: if paused {
                Vec::new()
            } else {
                user.fields()
                    .into_iter()
                    .map(|f| PropertyValue {
                        kind: "PropertyValue",
                        name: f.name,
                        value: content::render_plain(&f.value)
                            .trim_start_matches("<p>")
                            .trim_end_matches("</p>")
                            .to_owned(),
                    })
                    .collect()
            },
            published: user.account_created_at.map(rfc3339),
            inbox: urls.inbox(uid).to_string(),
            outbox: urls.outbox(uid).to_string(),
            followers: Some(urls.followers(uid).to_string()),
            following: Some(urls.following(uid).to_string()),
            featured: Some(urls.featured(uid).to_string()),
            endpoints: Endpoints {
                shared_inbox: urls.shared_inbox().to_string(),
            },
            public_key: PublicKey {
                id: urls.key_id(uid).to_string(),
                owner: id,
                public_key_pem: public_key_pem.to_owned(),
            },
            discoverable: user.discoverable && !paused,
            indexable: user.indexable && !paused,
            manually_approves_followers: user.manually_approves_followers,
            also_known_as: user.aliases(),
            moved_to: user.moved_to.clone(),
            suspended: paused.then_some(true),
        }
    }

    /// The instance actor, which signs fetches (FEP-2677).
    pub fn instance(public_key_pem: &str, urls: &Urls) -> Self {
        let id = urls.instance_actor().to_string();
        Self {
            context: Context,
            id: id.clone(),
            kind: ActorType::Application,
            preferred_username: urls.domain().to_owned(),
            name: Some("fedibridge".into()),
            summary: Some("<p>The fediverse bridge of this platform.</p>".into()),
            url: Some(urls.base().to_string()),
            icon: None,
            image: None,
            attachment: Vec::new(),
            published: None,
            inbox: urls.shared_inbox().to_string(),
            outbox: format!("{id}/outbox"),
            followers: None,
            following: None,
            featured: None,
            endpoints: Endpoints {
                shared_inbox: urls.shared_inbox().to_string(),
            },
            public_key: PublicKey {
                id: urls.instance_key_id().to_string(),
                owner: id,
                public_key_pem: public_key_pem.to_owned(),
            },
            discoverable: false,
            indexable: false,
            manually_approves_followers: true,
            also_known_as: Vec::new(),
            moved_to: None,
            suspended: None,
        }
    }
}
