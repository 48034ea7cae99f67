//! Actors as the crate sees them: the peer's own Person and the remote actors it fetched
//! and verified through the crate's `ObjectId::dereference`.

use activitypub_federation::{
    config::Data,
    fetch::object_id::ObjectId,
    protocol::{
        helpers::deserialize_one_or_many, public_key::PublicKey, verification::verify_domains_match,
    },
    traits::{Actor, Object},
};
use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::{same_origin, state::PeerData};

/// Actor types Mastodon-compatible servers publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActorType {
    /// A person.
    Person,
    /// A bot.
    Service,
    /// An instance or relay actor.
    Application,
    /// A group.
    Group,
    /// An organisation.
    Organization,
}

/// `endpoints` of an actor document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// The server's shared inbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_inbox: Option<Url>,
}

/// An actor document, tolerant of the optional fields Mastodon publishes; fields the peer
/// does not model are kept in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonJson {
    #[serde(rename = "type")]
    pub(crate) kind: ActorType,
    pub(crate) id: ObjectId<DbActor>,
    pub(crate) preferred_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) summary: Option<String>,
    pub(crate) inbox: Url,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outbox: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) followers: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) following: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) endpoints: Option<Endpoints>,
    pub(crate) public_key: PublicKey,
    #[serde(
        default,
        deserialize_with = "deserialize_one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) also_known_as: Vec<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) moved_to: Option<Url>,
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

/// An actor the peer knows: its own (with a private key) or a verified remote one.
///
/// Remote actors stay cached until an `Update` or `Delete` of them, or
/// [`super::RemotePeer::refresh_actor`]: `last_refreshed_at` is left `None` because the crate
/// would otherwise refetch after 20 s in test builds, and a refetch that meets 410 Gone makes
/// it refuse the actor's own `Delete`, so results would depend on timing.
#[derive(Debug, Clone)]
pub struct DbActor {
    pub(crate) id: Url,
    pub(crate) json: PersonJson,
    pub(crate) private_key: Option<String>,
}

/// What the peer learnt about a remote actor after the crate fetched and verified it.
#[derive(Debug, Clone)]
pub struct RemoteActorView {
    /// The actor's `id`.
    pub id: Url,
    /// The actor's `type`.
    pub kind: ActorType,
    /// `preferredUsername`
    pub preferred_username: String,
    /// Display `name`.
    pub name: Option<String>,
    /// `summary` (bio).
    pub summary: Option<String>,
    /// Personal inbox.
    pub inbox: Url,
    /// `endpoints.sharedInbox`
    pub shared_inbox: Option<Url>,
    /// `outbox`
    pub outbox: Option<Url>,
    /// `followers` collection.
    pub followers: Option<Url>,
    /// `publicKey.id`
    pub public_key_id: String,
    /// `publicKey.owner`
    pub public_key_owner: Url,
    /// `publicKey.publicKeyPem` (SPKI PEM; the crate cannot read PKCS#1).
    pub public_key_pem: String,
    /// `alsoKnownAs`
    pub also_known_as: Vec<Url>,
    /// `movedTo`
    pub moved_to: Option<Url>,
    /// The whole document as the peer parsed it.
    pub json: Value,
}

impl From<&DbActor> for RemoteActorView {
    fn from(actor: &DbActor) -> Self {
        let j = &actor.json;
        Self {
            id: actor.id.clone(),
            kind: j.kind,
            preferred_username: j.preferred_username.clone(),
            name: j.name.clone(),
            summary: j.summary.clone(),
            inbox: j.inbox.clone(),
            shared_inbox: j.endpoints.as_ref().and_then(|e| e.shared_inbox.clone()),
            outbox: j.outbox.clone(),
            followers: j.followers.clone(),
            public_key_id: j.public_key.id.clone(),
            public_key_owner: j.public_key.owner.clone(),
            public_key_pem: j.public_key.public_key_pem.clone(),
            also_known_as: j.also_known_as.clone(),
            moved_to: j.moved_to.clone(),
            json: serde_json::to_value(j).unwrap_or(Value::Null),
        }
    }
}

impl DbActor {
    /// The peer's own Person on `base` (`http://localhost:PORT/`), with a fresh key pair.
    pub(crate) fn local(base: &Url, username: &str) -> anyhow::Result<Self> {
        let id = base.join(&format!("users/{username}"))?;
        let keypair = activitypub_federation::http_signatures::generate_actor_keypair()?;
        let json = PersonJson {
            kind: ActorType::Person,
            id: id.clone().into(),
            preferred_username: username.to_owned(),
            name: Some(format!("Peer {username}")),
            summary: Some("Independent ActivityPub test peer".to_owned()),
            inbox: base.join(&format!("users/{username}/inbox"))?,
            outbox: Some(base.join(&format!("users/{username}/outbox"))?),
            followers: Some(base.join(&format!("users/{username}/followers"))?),
            following: Some(base.join(&format!("users/{username}/following"))?),
            endpoints: Some(Endpoints {
                shared_inbox: Some(base.join("inbox")?),
            }),
            public_key: PublicKey {
                id: format!("{id}#main-key"),
                owner: id.clone(),
                public_key_pem: keypair.public_key,
            },
            also_known_as: Vec::new(),
            moved_to: None,
            extra: Map::from_iter([
                ("url".to_owned(), Value::String(id.to_string())),
                ("manuallyApprovesFollowers".to_owned(), Value::Bool(false)),
                ("discoverable".to_owned(), Value::Bool(true)),
            ]),
        };
        Ok(Self {
            id,
            json,
            private_key: Some(keypair.private_key),
        })
    }

    /// The actor's `followers` collection, for addressing.
    pub(crate) fn followers_url(&self) -> anyhow::Result<Url> {
        self.json
            .followers
            .clone()
            .ok_or_else(|| anyhow!("actor {} has no followers collection", self.id))
    }
}

#[async_trait::async_trait]
impl Object for DbActor {
    type DataType = PeerData;
    type Kind = PersonJson;
    type Error = anyhow::Error;

    async fn read_from_id(
        object_id: Url,
        data: &Data<Self::DataType>,
    ) -> Result<Option<Self>, Self::Error> {
        if object_id == data.local.id {
            return Ok(Some(data.local.clone()));
        }
        Ok(data.remote_actor(&object_id))
    }

    async fn delete(self, data: &Data<Self::DataType>) -> Result<(), Self::Error> {
        data.forget_remote_actor(&self.id);
        Ok(())
    }

    async fn into_json(self, _data: &Data<Self::DataType>) -> Result<Self::Kind, Self::Error> {
        Ok(self.json)
    }

    async fn verify(
        json: &Self::Kind,
        expected_domain: &Url,
        _data: &Data<Self::DataType>,
    ) -> Result<(), Self::Error> {
        verify_domains_match(json.id.inner(), expected_domain)?;
        // The crate compares hosts only; on loopback every server is `localhost`, so the
        // port must be compared too or one test server could speak for another.
        same_origin(json.id.inner(), expected_domain)?;
        // Mastodon refuses a key that its document does not claim; so does the peer.
        if &json.public_key.owner != json.id.inner() {
            return Err(anyhow!(
                "publicKey.owner {} is not the actor {}",
                json.public_key.owner,
                json.id
            ));
        }
        Ok(())
    }

    async fn from_json(json: Self::Kind, data: &Data<Self::DataType>) -> Result<Self, Self::Error> {
        let actor = DbActor {
            id: json.id.inner().clone(),
            json,
            private_key: None,
        };
        data.store_remote_actor(actor.clone());
        Ok(actor)
    }
}

impl Actor for DbActor {
    fn id(&self) -> Url {
        self.id.clone()
    }

    fn public_key_pem(&self) -> &str {
        &self.json.public_key.public_key_pem
    }

    fn private_key_pem(&self) -> Option<String> {
        self.private_key.clone()
    }

    fn inbox(&self) -> Url {
        self.json.inbox.clone()
    }

    fn shared_inbox(&self) -> Option<Url> {
        self.json.endpoints.as_ref()?.shared_inbox.clone()
    }
}

/// Reads `@user@host:port` from an actor, for Mention tags.
pub(crate) fn acct_of(actor: &DbActor) -> anyhow::Result<String> {
    let host = actor.id.host_str().context("actor id without host")?;
    Ok(match actor.id.port() {
        Some(port) => format!("@{}@{host}:{port}", actor.json.preferred_username),
        None => format!("@{}@{host}", actor.json.preferred_username),
    })
}
