//! The AMQP headers fedibridge adds to messages it parks or retries.

use lapin::{
    BasicProperties,
    types::{AMQPValue, FieldTable},
};

/// Human-readable reason a message was dead-lettered.
pub const REASON: &str = "x-fedibridge-reason";
/// Machine kind of the failure (`malformed`, `unknown_type`, `unsupported_version`,
/// `schema_violation`, `rejected`).
pub const ERROR: &str = "x-fedibridge-error";
/// The routing key the message was first published with.
pub const ROUTING_KEY: &str = "x-fedibridge-routing-key";
/// How many times the sink failed transiently on this message.
pub const ATTEMPT: &str = "x-fedibridge-attempt";

/// A header as text, whatever string type the publisher used.
pub(crate) fn text(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A header as a count, whatever integer type the publisher used.
pub(crate) fn count(properties: &BasicProperties, name: &str) -> Option<u32> {
    let value = match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongLongInt(n) => i128::from(*n),
        AMQPValue::LongInt(n) => i128::from(*n),
        AMQPValue::LongUInt(n) => i128::from(*n),
        AMQPValue::ShortInt(n) => i128::from(*n),
        AMQPValue::ShortUInt(n) => i128::from(*n),
        _ => return None,
    };
    u32::try_from(value).ok()
}

/// The message's headers, or an empty table.
pub(crate) fn table(properties: &BasicProperties) -> FieldTable {
    properties.headers().clone().unwrap_or_default()
}

/// The original routing key: the header if a retry or dead-letter hop recorded one,
/// otherwise the key the message arrived with.
pub(crate) fn original_routing_key(properties: &BasicProperties, arrived_with: &str) -> String {
    text(properties, ROUTING_KEY).unwrap_or_else(|| arrived_with.to_owned())
}
