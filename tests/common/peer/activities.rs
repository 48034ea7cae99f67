//! The activities the peer sends and the ones its inbox accepts, as the crate's
//! `ActivityHandler`s. The crate has already checked the digest, the signature against
//! the actor's key and that the activity id is on the actor's host; `verify` adds the
//! checks a Mastodon server makes about the object.

use activitypub_federation::{
    config::Data,
    fetch::object_id::ObjectId,
    kinds::activity::{
        AcceptType, AnnounceType, BlockType, CreateType, DeleteType, FlagType, FollowType,
        LikeType, RejectType, UndoType, UpdateType,
    },
    protocol::helpers::deserialize_one_or_many,
    traits::{ActivityHandler, Actor, Object},
};
use anyhow::{anyhow, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use super::{
    actor::{DbActor, PersonJson},
    delivery,
    note::{Note, ObjectOrId},
    same_origin,
    state::{FollowState, PeerData},
};

/// `type` of a `Move`; the kinds crate has no such marker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoveType {
    /// `Move`
    #[default]
    Move,
}

/// Every activity kind the inbox accepts; the crate dispatches to the matching variant.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
#[enum_delegate::implement(ActivityHandler)]
pub enum InboxActivity {
    /// `Follow`
    Follow(Follow),
    /// `Accept(Follow)`
    Accept(Accept),
    /// `Reject(Follow)`
    Reject(Reject),
    /// `Create(Note)`
    Create(Box<Create>),
    /// `Update(Note | actor)`
    Update(Update),
    /// `Delete(Note | Tombstone | actor)`
    Delete(Delete),
    /// `Undo(Follow | Like | Announce | Block)`
    Undo(Undo),
    /// `Announce`
    Announce(Announce),
    /// `Like`
    Like(Like),
    /// `Move`
    Move(Move),
    /// `Block`
    Block(Block),
    /// `Flag` (a report)
    Flag(Flag),
}

/// `Follow`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Follow {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: FollowType,
    pub(crate) actor: Url,
    pub(crate) object: Url,
}

#[async_trait::async_trait]
impl ActivityHandler for Follow {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, data: &Data<PeerData>) -> anyhow::Result<()> {
        ensure!(
            self.object == data.local.id,
            "Follow of {} which is not this peer's actor",
            self.object
        );
        Ok(())
    }

    async fn receive(self, data: &Data<PeerData>) -> anyhow::Result<()> {
        let follower = ObjectId::<DbActor>::from(self.actor.clone())
            .dereference(data)
            .await?;
        data.add_follower(follower.id.clone(), follower.shared_inbox_or_inbox());
        if data.auto_accept {
            let accept = Accept {
                id: data
                    .local
                    .id
                    .join(&format!("#accepts/follows/{}", uuid::Uuid::new_v4()))?,
                kind: AcceptType::Accept,
                actor: data.local.id.clone(),
                object: FollowRef::Follow(self),
            };
            // Mastodon answers the Follow's POST first and delivers the Accept afterwards,
            // so a server that awaits its POST while holding a lock does not deadlock.
            let data = data.reset_request_count();
            let inbox = follower.inbox();
            tokio::spawn(async move {
                if let Err(e) = delivery::send(&data, accept, vec![inbox]).await {
                    data.record_rejection(format!("auto-Accept could not be delivered: {e:#}"));
                }
            });
        }
        Ok(())
    }
}

/// The Follow an `Accept` or `Reject` answers: embedded (Mastodon) or by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FollowRef {
    /// The Follow itself.
    Follow(Follow),
    /// The Follow's id.
    Id(Url),
}

/// Finds the Follow this peer sent that `answer` (by `actor`) refers to.
fn answered_follow(object: &FollowRef, actor: &Url, data: &Data<PeerData>) -> anyhow::Result<Url> {
    let id = match object {
        FollowRef::Follow(f) => {
            ensure!(
                f.actor == data.local.id,
                "answered Follow's actor {} is not this peer",
                f.actor
            );
            ensure!(
                &f.object == actor,
                "answered Follow's object {} is not the answering actor {actor}",
                f.object
            );
            &f.id
        }
        FollowRef::Id(id) => id,
    };
    match data.follow(id) {
        Some(f) if &f.target == actor => Ok(id.clone()),
        Some(f) => bail!("Follow {id} was sent to {}, not to {actor}", f.target),
        // Like Mastodon, an answer with an unknown id still settles the pending follow.
        None => data
            .pending_follow_of(actor)
            .ok_or_else(|| anyhow!("no Follow {id} and no pending follow of {actor}")),
    }
}

/// `Accept(Follow)`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accept {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: AcceptType,
    pub(crate) actor: Url,
    pub(crate) object: FollowRef,
}

#[async_trait::async_trait]
impl ActivityHandler for Accept {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, data: &Data<PeerData>) -> anyhow::Result<()> {
        answered_follow(&self.object, &self.actor, data).map(|_| ())
    }

    async fn receive(self, data: &Data<PeerData>) -> anyhow::Result<()> {
        let id = answered_follow(&self.object, &self.actor, data)?;
        data.set_follow_state(&id, FollowState::Accepted);
        Ok(())
    }
}

/// `Reject(Follow)`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reject {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: RejectType,
    pub(crate) actor: Url,
    pub(crate) object: FollowRef,
}

#[async_trait::async_trait]
impl ActivityHandler for Reject {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, data: &Data<PeerData>) -> anyhow::Result<()> {
        answered_follow(&self.object, &self.actor, data).map(|_| ())
    }

    async fn receive(self, data: &Data<PeerData>) -> anyhow::Result<()> {
        let id = answered_follow(&self.object, &self.actor, data)?;
        data.set_follow_state(&id, FollowState::Rejected);
        Ok(())
    }
}

/// A post must be its author's and live on its author's server.
fn verify_note(note: &Note, actor: &Url) -> anyhow::Result<()> {
    ensure!(
        &note.attributed_to == actor,
        "attributedTo {} is not the actor {actor}",
        note.attributed_to
    );
    same_origin(&note.id, actor)
}

/// `Create(Note)`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Create {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: CreateType,
    pub(crate) actor: Url,
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub(crate) to: Vec<Url>,
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub(crate) cc: Vec<Url>,
    pub(crate) object: Note,
}

#[async_trait::async_trait]
impl ActivityHandler for Create {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        verify_note(&self.object, &self.actor)
    }

    async fn receive(self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// What an `Update` carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UpdateObject {
    /// An edited post.
    Note(Box<Note>),
    /// A changed profile (or key).
    Actor(Box<PersonJson>),
}

/// `Update(Note | actor)`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Update {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: UpdateType,
    pub(crate) actor: Url,
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub(crate) to: Vec<Url>,
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub(crate) cc: Vec<Url>,
    pub(crate) object: UpdateObject,
}

#[async_trait::async_trait]
impl ActivityHandler for Update {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, data: &Data<PeerData>) -> anyhow::Result<()> {
        match &self.object {
            UpdateObject::Note(note) => verify_note(note, &self.actor),
            UpdateObject::Actor(person) => {
                ensure!(
                    person.id.inner() == &self.actor,
                    "Update of actor {} sent by {}",
                    person.id,
                    self.actor
                );
                DbActor::verify(person, &self.actor, data).await
            }
        }
    }

    async fn receive(self, data: &Data<PeerData>) -> anyhow::Result<()> {
        if let UpdateObject::Actor(person) = self.object {
            // A profile update replaces the cached document, key included.
            DbActor::from_json(*person, data).await?;
        }
        Ok(())
    }
}

/// `Delete(Note | Tombstone | actor)`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delete {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: DeleteType,
    pub(crate) actor: Url,
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub(crate) to: Vec<Url>,
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub(crate) cc: Vec<Url>,
    pub(crate) object: ObjectOrId,
}

#[async_trait::async_trait]
impl ActivityHandler for Delete {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        same_origin(self.object.id(), &self.actor)
    }

    async fn receive(self, data: &Data<PeerData>) -> anyhow::Result<()> {
        if self.object.id() == &self.actor {
            data.forget_remote_actor(&self.actor);
            data.remove_follower(&self.actor);
        }
        Ok(())
    }
}

/// Kinds of activity that can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UndoableKind {
    /// `Follow`
    Follow,
    /// `Like`
    Like,
    /// `Announce`
    Announce,
    /// `Block`
    Block,
}

/// The activity an `Undo` embeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UndoneActivity {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: UndoableKind,
    pub(crate) actor: Url,
    pub(crate) object: Value,
}

/// What an `Undo` refers to: the embedded activity (Mastodon) or its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UndoObject {
    /// The undone activity.
    Activity(UndoneActivity),
    /// Its id only.
    Id(Url),
}

/// `Undo`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Undo {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: UndoType,
    pub(crate) actor: Url,
    pub(crate) object: UndoObject,
}

#[async_trait::async_trait]
impl ActivityHandler for Undo {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        match &self.object {
            UndoObject::Activity(inner) => {
                ensure!(
                    inner.actor == self.actor,
                    "Undo by {} of an activity by {}",
                    self.actor,
                    inner.actor
                );
                same_origin(&inner.id, &self.actor)
            }
            UndoObject::Id(id) => same_origin(id, &self.actor),
        }
    }

    async fn receive(self, data: &Data<PeerData>) -> anyhow::Result<()> {
        if let UndoObject::Activity(UndoneActivity {
            kind: UndoableKind::Follow,
            ..
        }) = self.object
        {
            data.remove_follower(&self.actor);
        }
        Ok(())
    }
}

/// `Announce` (boost)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Announce {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: AnnounceType,
    pub(crate) actor: Url,
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub(crate) to: Vec<Url>,
    #[serde(default, deserialize_with = "deserialize_one_or_many")]
    pub(crate) cc: Vec<Url>,
    pub(crate) object: ObjectOrId,
}

#[async_trait::async_trait]
impl ActivityHandler for Announce {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        Ok(())
    }

    async fn receive(self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// `Like` (favourite)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Like {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: LikeType,
    pub(crate) actor: Url,
    pub(crate) object: ObjectOrId,
}

#[async_trait::async_trait]
impl ActivityHandler for Like {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        Ok(())
    }

    async fn receive(self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// `Move` (account migration)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Move {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: MoveType,
    pub(crate) actor: Url,
    pub(crate) object: Url,
    pub(crate) target: Url,
}

#[async_trait::async_trait]
impl ActivityHandler for Move {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, data: &Data<PeerData>) -> anyhow::Result<()> {
        ensure!(
            self.object == self.actor,
            "Move of {} sent by {}",
            self.object,
            self.actor
        );
        // Mastodon only follows a move the target confirms through alsoKnownAs.
        let target = ObjectId::<DbActor>::from(self.target.clone())
            .dereference_forced(data)
            .await?;
        ensure!(
            target.json.also_known_as.contains(&self.actor),
            "Move target {} does not list {} in alsoKnownAs",
            self.target,
            self.actor
        );
        Ok(())
    }

    async fn receive(self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// `Block`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Block {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: BlockType,
    pub(crate) actor: Url,
    pub(crate) object: Url,
}

#[async_trait::async_trait]
impl ActivityHandler for Block {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, data: &Data<PeerData>) -> anyhow::Result<()> {
        ensure!(
            self.object == data.local.id,
            "Block of {} which is not this peer",
            self.object
        );
        Ok(())
    }

    async fn receive(self, data: &Data<PeerData>) -> anyhow::Result<()> {
        // A block ends the relation both ways, as on Mastodon.
        data.remove_follower(&self.actor);
        data.set_follows_of(&self.actor, FollowState::Rejected);
        Ok(())
    }
}

/// `Flag`: another server reports the peer's actor and posts, as Mastodon forwards reports
/// (from its instance actor, objects = the account then its posts, `content` = comment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flag {
    pub(crate) id: Url,
    #[serde(rename = "type")]
    pub(crate) kind: FlagType,
    pub(crate) actor: Url,
    #[serde(deserialize_with = "deserialize_one_or_many")]
    pub(crate) object: Vec<Url>,
    #[serde(default)]
    pub(crate) content: Option<String>,
}

#[async_trait::async_trait]
impl ActivityHandler for Flag {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, data: &Data<PeerData>) -> anyhow::Result<()> {
        // Mastodon acts on the reported things that are its own; a report naming nothing
        // of this server's is not for it.
        ensure!(
            self.object.first() == Some(&data.local.id),
            "Flag does not start with this peer's actor: {:?}",
            self.object
        );
        for object in &self.object {
            same_origin(object, &data.local.id)?;
        }
        // The reporting server's actor must be a real actor whose key signed the request;
        // the crate already checked the signature against it.
        ObjectId::<DbActor>::from(self.actor.clone())
            .dereference(data)
            .await?;
        Ok(())
    }

    async fn receive(self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Arbitrary JSON sent through the crate's signing and delivery, for tests that need a
/// malformed or unusual activity; it is never received.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawActivity {
    pub(crate) id: Url,
    pub(crate) actor: Url,
    #[serde(flatten)]
    pub(crate) rest: Map<String, Value>,
}

#[async_trait::async_trait]
impl ActivityHandler for RawActivity {
    type DataType = PeerData;
    type Error = anyhow::Error;

    fn id(&self) -> &Url {
        &self.id
    }

    fn actor(&self) -> &Url {
        &self.actor
    }

    async fn verify(&self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        bail!("raw activities are only sent")
    }

    async fn receive(self, _data: &Data<PeerData>) -> anyhow::Result<()> {
        bail!("raw activities are only sent")
    }
}
