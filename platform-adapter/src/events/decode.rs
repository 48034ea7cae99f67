//! Strict decoding: bytes → typed envelope, or a precise reason why not.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    Envelope, InboundEvent, OutboundEvent, SCHEMA_VERSION,
    ids::{EventId, OrderKey},
    payload::{InboundPayload, OutboundPayload},
};

/// Largest message accepted, in bytes (post text is bounded far below this).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Which rule a rejected message broke; also the value of the `x-fedibridge-error` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// Not a JSON object.
    Malformed,
    /// `type` names no type this bridge knows.
    UnknownType,
    /// `schema_version` is not one this bridge understands.
    UnsupportedVersion,
    /// Valid JSON of a known type that does not fit the schema (missing field, wrong type,
    /// unknown field, too long, too many).
    SchemaViolation,
}

impl DecodeErrorKind {
    /// The stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownType => "unknown_type",
            Self::UnsupportedVersion => "unsupported_version",
            Self::SchemaViolation => "schema_violation",
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message was rejected: a machine kind and a reason for the person reading the
/// dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct DecodeError {
    /// The rule broken.
    pub kind: DecodeErrorKind,
    /// What exactly was wrong, naming the field.
    pub reason: String,
}

impl DecodeError {
    fn new(kind: DecodeErrorKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }

    fn schema(reason: impl Into<String>) -> Self {
        Self::new(DecodeErrorKind::SchemaViolation, reason)
    }
}

/// Decodes and checks one event from the platform.
pub fn decode_inbound(bytes: &[u8]) -> Result<InboundEvent, DecodeError> {
    decode(bytes, InboundPayload::from_parts)
}

/// Decodes and checks one message to the platform (for the platform's tests and tools).
pub fn decode_outbound(bytes: &[u8]) -> Result<OutboundEvent, DecodeError> {
    decode(bytes, OutboundPayload::from_parts)
}

/// A payload vocabulary that can check its own bounds.
pub(crate) trait Checked: Sized {
    /// The first bound violated.
    fn check(&self) -> Result<(), String>;
}

impl Checked for InboundPayload {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
}

impl Checked for OutboundPayload {
    fn check(&self) -> Result<(), String> {
        self.validate()
    }
}

/// How a vocabulary turns `type` and `data` into a payload (see `from_parts`).
type FromParts<P> = fn(&str, Value) -> Option<Result<P, String>>;

/// The envelope fields other than `type`, `data` and `schema_version`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    id: EventId,
    occurred_at: DateTime<Utc>,
    order_key: OrderKey,
}

fn decode<P: Checked>(bytes: &[u8], from_parts: FromParts<P>) -> Result<Envelope<P>, DecodeError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(DecodeError::new(
            DecodeErrorKind::Malformed,
            format!("{} bytes, at most {MAX_MESSAGE_BYTES} allowed", bytes.len()),
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| DecodeError::new(DecodeErrorKind::Malformed, format!("not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError::new(
            DecodeErrorKind::Malformed,
            "not a JSON object",
        ));
    };
    // The version is checked first: a future version may rename types or fields, so
    // nothing else can be judged until we know we speak it.
    let schema_version = take_version(&mut object)?;
    let event_type = match object.remove("type") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(DecodeError::schema("type: must be a string")),
        None => return Err(DecodeError::schema("type: missing")),
    };
    let data = object.remove("data");
    let head: Head = serde_path_to_error::deserialize(Value::Object(object))
        .map_err(|e| DecodeError::schema(describe_head(&e)))?;
    let unknown = || {
        DecodeError::new(
            DecodeErrorKind::UnknownType,
            format!("type {event_type:?} is not known to this bridge"),
        )
    };
    let Some(data) = data else {
        return Err(if from_parts(&event_type, Value::Null).is_none() {
            unknown()
        } else {
            DecodeError::schema("data: missing")
        });
    };
    let payload = from_parts(&event_type, data)
        .ok_or_else(unknown)?
        .map_err(DecodeError::schema)?;
    payload.check().map_err(DecodeError::schema)?;
    Ok(Envelope {
        id: head.id,
        occurred_at: head.occurred_at,
        schema_version,
        order_key: head.order_key,
        payload,
    })
}

fn take_version(object: &mut Map<String, Value>) -> Result<u32, DecodeError> {
    let version = match object.remove("schema_version") {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| DecodeError::schema("schema_version: must be a positive integer"))?,
        Some(_) => return Err(DecodeError::schema("schema_version: must be an integer")),
        None => return Err(DecodeError::schema("schema_version: missing")),
    };
    if version != u64::from(SCHEMA_VERSION) {
        return Err(DecodeError::new(
            DecodeErrorKind::UnsupportedVersion,
            format!(
                "schema_version {version} is not supported (this bridge speaks {SCHEMA_VERSION})"
            ),
        ));
    }
    Ok(SCHEMA_VERSION)
}

fn describe_head(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    if path == "." {
        error.inner().to_string()
    } else {
        format!("{path}: {}", error.inner())
    }
}
