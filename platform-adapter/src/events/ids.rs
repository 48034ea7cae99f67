//! Identifier newtypes: every id the platform or the bridge hands over is one of these.

use std::{borrow::Cow, fmt};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest id accepted, in characters.
pub const ID_MAX_CHARS: usize = 128;

macro_rules! id_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks the id (non-empty, at most 128 characters) and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, Error> {
                let value = value.into();
                check_id(&value).map_err(|reason| Error::InvalidId(format!("{}: {reason}", stringify!($name))))?;
                Ok(Self(value))
            }

            /// The id as the platform spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(value: String) -> Result<Self, Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": ID_MAX_CHARS,
                    "description": $doc,
                })
            }
        }
    };
}

fn check_id(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let chars = value.chars().count();
    if chars > ID_MAX_CHARS {
        return Err(format!("{chars} characters, at most {ID_MAX_CHARS}"));
    }
    Ok(())
}

id_type!(
    EventId,
    "The unique id of one message, chosen by its sender and stable across retries."
);
id_type!(
    OrderKey,
    "Messages with the same key take effect in order: the platform id of the user concerned."
);
id_type!(UserId, "A user's id on the platform.");
id_type!(PostId, "A post's id on the platform.");
id_type!(RepostId, "A repost's id on the platform.");
id_type!(ReportId, "A report's id on the platform.");

impl From<UserId> for OrderKey {
    fn from(user: UserId) -> Self {
        Self(user.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bounded_and_non_empty() {
        assert!(UserId::new("").is_err());
        assert!(UserId::new("x".repeat(ID_MAX_CHARS)).is_ok());
        assert!(UserId::new("x".repeat(ID_MAX_CHARS + 1)).is_err());
        let parsed: Result<PostId, _> = serde_json::from_str("\"\"");
        assert!(parsed.is_err());
    }
}
