//! The versioned JSON envelope exchanged with the platform, in both directions.
//!
//! ```json
//! {"id": "...", "type": "post.created", "occurred_at": "2026-01-01T00:00:00Z",
//!  "schema_version": 1, "order_key": "<user id>", "data": {...}}
//! ```

mod decode;
mod ids;
mod inbound;
pub mod limits;
mod outbound;
mod payload;
mod validate;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use decode::{DecodeError, DecodeErrorKind, decode_inbound, decode_outbound};
pub use ids::{EventId, ID_MAX_CHARS, OrderKey, PostId, ReportId, RepostId, UserId};
pub use inbound::{
    InteractionPolicy, Media, Mention, Post, PostDeleted, PostRef, ProfileField, ReportCreated,
    RepostCreated, RepostDeleted, SharingTurnedOn, UserProfile, UserRef, Visibility,
};
pub use outbound::{
    BlockedByRemote, FollowerChange, Reaction, RemoteAccount, RemoteContent, RemoteContentDeleted,
    RemovalReceipt, ReportReceived, Reporter, ServerRef, SharingState, SharingStatusChanged,
};
pub use payload::{InboundPayload, InboundType, OutboundPayload, OutboundType};

/// The only envelope version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

/// One message: the envelope fields around a typed payload (`type` + `data` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope<P> {
    /// Unique per message; the receiver de-duplicates by it.
    pub id: EventId,
    /// When it happened at the sender.
    pub occurred_at: DateTime<Utc>,
    /// Envelope and payload version; always [`SCHEMA_VERSION`] once decoded.
    pub schema_version: u32,
    /// Messages with the same key take effect in the order they were published.
    pub order_key: OrderKey,
    /// `type` and `data`.
    #[serde(flatten)]
    pub payload: P,
}

/// A message from the platform.
pub type InboundEvent = Envelope<InboundPayload>;
/// A message to the platform.
pub type OutboundEvent = Envelope<OutboundPayload>;

impl<P> Envelope<P> {
    /// A message of the current schema version.
    pub fn new(id: EventId, occurred_at: DateTime<Utc>, order_key: OrderKey, payload: P) -> Self {
        Self {
            id,
            occurred_at,
            schema_version: SCHEMA_VERSION,
            order_key,
            payload,
        }
    }
}

impl OutboundEvent {
    /// The AMQP routing key: the message's `type`.
    pub fn routing_key(&self) -> &'static str {
        self.payload.event_type().as_str()
    }

    /// The JSON bytes to publish, after the same bounds check the receiver applies.
    pub fn encode(&self) -> Result<Vec<u8>, crate::Error> {
        self.payload.validate().map_err(crate::Error::Encode)?;
        encode(self)
    }
}

impl InboundEvent {
    /// The AMQP routing key: the event's `type`.
    pub fn routing_key(&self) -> &'static str {
        self.payload.event_type().as_str()
    }

    /// The JSON bytes to publish (the platform's side; used by tests and tools), after the
    /// same bounds check the receiver applies.
    pub fn encode(&self) -> Result<Vec<u8>, crate::Error> {
        self.payload.validate().map_err(crate::Error::Encode)?;
        encode(self)
    }
}

fn encode<P: Serialize>(event: &Envelope<P>) -> Result<Vec<u8>, crate::Error> {
    serde_json::to_vec(event).map_err(|e| crate::Error::Encode(e.to_string()))
}
