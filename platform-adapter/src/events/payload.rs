//! The `type` → `data` vocabularies of both directions.

use schemars::{Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::{
    inbound::{
        Post, PostDeleted, ReportCreated, RepostCreated, RepostDeleted, SharingTurnedOn,
        UserProfile, UserRef,
    },
    outbound::{
        BlockedByRemote, FollowerChange, Reaction, RemoteContent, RemoteContentDeleted,
        ReportReceived, SharingStatusChanged,
    },
    validate::Validate,
};

/// `at.path: message` for a deserialization error inside `at`.
pub(crate) fn describe(at: &str, error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    if path == "." {
        format!("{at}: {}", error.inner())
    } else {
        format!("{at}.{path}: {}", error.inner())
    }
}

/// Declares a payload enum (adjacently tagged as `type` + `data`) together with the plain
/// enum of its type names, so that the wire names are written exactly once.
macro_rules! vocabulary {
    (
        $(#[$payload_doc:meta])* $payload:ident,
        $(#[$type_doc:meta])* $kind:ident {
            $( $(#[$doc:meta])* $wire:literal => $variant:ident($data:ty), )+
        }
    ) => {
        $(#[$payload_doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum $payload {
            $( $(#[$doc])* #[serde(rename = $wire)] $variant($data), )+
        }

        $(#[$type_doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $kind {
            $( $(#[$doc])* #[serde(rename = $wire)] $variant, )+
        }

        impl $kind {
            /// Every type, in documentation order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The dotted wire name, also the AMQP routing key.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }

            /// The type with this wire name.
            pub fn from_wire(name: &str) -> Option<Self> {
                match name {
                    $($wire => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The JSON Schema of this type's `data`.
            pub fn data_schema(self, generator: &mut SchemaGenerator) -> Schema {
                match self {
                    $(Self::$variant => generator.subschema_for::<$data>(),)+
                }
            }
        }

        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $payload {
            /// This payload's type.
            pub fn event_type(&self) -> $kind {
                match self {
                    $(Self::$variant(_) => $kind::$variant,)+
                }
            }

            /// Deserializes `data` as the type named `name`: `None` if no type has that name,
            /// otherwise the payload or a reason naming the offending field.
            pub(crate) fn from_parts(
                name: &str,
                data: serde_json::Value,
            ) -> Option<Result<Self, String>> {
                let kind = $kind::from_wire(name)?;
                Some(match kind {
                    $($kind::$variant => serde_path_to_error::deserialize::<_, $data>(data)
                        .map(Self::$variant)
                        .map_err(|e| describe("data", &e)),)+
                })
            }

            /// The bounds check: the first field that is too long or list that is too big.
            pub(crate) fn validate(&self) -> Result<(), String> {
                match self {
                    $(Self::$variant(data) => data.validate("data"),)+
                }
            }
        }
    };
}

vocabulary! {
    /// What happened on the platform, with its data.
    InboundPayload,
    /// The types of inbound events.
    InboundType {
        /// A user account was created.
        "user.created" => UserCreated(UserProfile),
        /// A user's profile or eligibility facts changed.
        "user.updated" => UserUpdated(UserProfile),
        /// A user account was deleted.
        "user.deleted" => UserDeleted(UserRef),
        /// The user turned sharing on in the platform's own UI.
        "sharing.turned_on" => SharingTurnedOn(SharingTurnedOn),
        /// The user turned sharing off in the platform's own UI.
        "sharing.turned_off" => SharingTurnedOff(UserRef),
        /// A post was published.
        "post.created" => PostCreated(Post),
        /// A post was edited or its visibility changed.
        "post.updated" => PostUpdated(Post),
        /// A post was deleted.
        "post.deleted" => PostDeleted(PostDeleted),
        /// A user reposted a post.
        "repost.created" => RepostCreated(RepostCreated),
        /// A repost was undone.
        "repost.deleted" => RepostDeleted(RepostDeleted),
        /// A user reported a fediverse account or its posts.
        "report.created" => ReportCreated(ReportCreated),
    }
}

vocabulary! {
    /// What happened on the fediverse, with its data.
    OutboundPayload,
    /// The types of outbound messages.
    OutboundType {
        /// A fediverse account followed a user (or asked to).
        "follower.added" => FollowerAdded(FollowerChange),
        /// A fediverse account stopped following a user.
        "follower.removed" => FollowerRemoved(FollowerChange),
        /// A fediverse account liked a post.
        "like.added" => LikeAdded(Reaction),
        /// A like was withdrawn.
        "like.removed" => LikeRemoved(Reaction),
        /// A fediverse account boosted a post.
        "boost.added" => BoostAdded(Reaction),
        /// A boost was withdrawn.
        "boost.removed" => BoostRemoved(Reaction),
        /// A reply to a user's post arrived.
        "reply.received" => ReplyReceived(RemoteContent),
        /// A post mentioning a user arrived.
        "mention.received" => MentionReceived(RemoteContent),
        /// A post quoting a user's post arrived.
        "quote.received" => QuoteReceived(RemoteContent),
        /// A received reply, mention or quote was edited.
        "reply.updated" => ReplyUpdated(RemoteContent),
        /// A received reply, mention or quote was deleted.
        "reply.deleted" => ReplyDeleted(RemoteContentDeleted),
        /// A fediverse server reported a user or posts.
        "report.received" => ReportReceived(ReportReceived),
        /// A fediverse account blocked a user.
        "user.blocked_by_remote" => UserBlockedByRemote(BlockedByRemote),
        /// A user's sharing state or removal progress changed.
        "sharing.status_changed" => SharingStatusChanged(SharingStatusChanged),
    }
}
