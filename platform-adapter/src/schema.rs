//! JSON Schema documents for every message type, generated from the Rust types.
//!
//! The committed copies under `platform-adapter/schema/` are what platform engineers read;
//! a test fails when they differ from what these functions generate.

use chrono::{DateTime, Utc};
use schemars::{Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Value, json};

use crate::events::{EventId, InboundType, OrderKey, OutboundType, SCHEMA_VERSION};

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Platform → bridge.
    Inbound,
    /// Bridge → platform.
    Outbound,
}

impl Direction {
    /// The directory name used for schemas and examples.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// One message type's schema.
#[derive(Debug, Clone)]
pub struct SchemaDocument {
    /// Which way the message travels.
    pub direction: Direction,
    /// The message's `type`.
    pub event_type: &'static str,
    /// The JSON Schema (draft 2020-12) of the whole message.
    pub schema: Value,
}

impl SchemaDocument {
    /// Path relative to the schema directory, e.g. `inbound/post.created.schema.json`.
    pub fn relative_path(&self) -> String {
        format!(
            "{}/{}.schema.json",
            self.direction.as_str(),
            self.event_type
        )
    }
}

/// Schemas for every inbound and outbound type.
pub fn documents() -> Vec<SchemaDocument> {
    let inbound = InboundType::ALL.iter().map(|kind| SchemaDocument {
        direction: Direction::Inbound,
        event_type: kind.as_str(),
        schema: envelope(Direction::Inbound, kind.as_str(), |g| kind.data_schema(g)),
    });
    let outbound = OutboundType::ALL.iter().map(|kind| SchemaDocument {
        direction: Direction::Outbound,
        event_type: kind.as_str(),
        schema: envelope(Direction::Outbound, kind.as_str(), |g| kind.data_schema(g)),
    });
    inbound.chain(outbound).collect()
}

/// The envelope schema with `type` fixed to `event_type` and `data` from the Rust type.
fn envelope(
    direction: Direction,
    event_type: &str,
    data: impl FnOnce(&mut SchemaGenerator) -> Schema,
) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let data = data(&mut generator);
    let id = generator.subschema_for::<EventId>();
    let order_key = generator.subschema_for::<OrderKey>();
    let occurred_at = generator.subschema_for::<DateTime<Utc>>();
    let definitions = generator.take_definitions(true);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": event_type,
        "description": format!(
            "fedibridge {} message `{event_type}`, schema version {SCHEMA_VERSION}",
            direction.as_str()
        ),
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "type", "occurred_at", "schema_version", "order_key", "data"],
        "properties": {
            "id": id,
            "type": { "const": event_type },
            "occurred_at": occurred_at,
            "schema_version": { "const": SCHEMA_VERSION },
            "order_key": order_key,
            "data": data,
        },
        "$defs": definitions,
    })
}
