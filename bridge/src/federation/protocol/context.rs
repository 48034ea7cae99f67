//! The JSON-LD `@context` of every document we serve, with the Mastodon extensions we use.

use std::sync::LazyLock;

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

static CONTEXT: LazyLock<Value> = LazyLock::new(|| {
    json!([
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
        {
            "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
            "sensitive": "as:sensitive",
            "Hashtag": "as:Hashtag",
            "movedTo": { "@id": "as:movedTo", "@type": "@id" },
            "alsoKnownAs": { "@id": "as:alsoKnownAs", "@type": "@id" },
            "quoteUrl": "as:quoteUrl",
            "toot": "http://joinmastodon.org/ns#",
            "featured": { "@id": "toot:featured", "@type": "@id" },
            "discoverable": "toot:discoverable",
            "indexable": "toot:indexable",
            "suspended": "toot:suspended",
            "blurhash": "toot:blurhash",
            "schema": "http://schema.org#",
            "PropertyValue": "schema:PropertyValue",
            "value": "schema:value",
            "misskey": "https://misskey-hub.net/ns#",
            "_misskey_quote": "misskey:_misskey_quote",
            "quote": { "@id": "https://w3id.org/fep/044f#quote", "@type": "@id" },
            "gts": "https://gotosocial.org/ns#",
            "interactionPolicy": { "@id": "gts:interactionPolicy", "@type": "@id" },
            "canQuote": { "@id": "gts:canQuote", "@type": "@id" },
            "canReply": { "@id": "gts:canReply", "@type": "@id" },
            "automaticApproval": { "@id": "gts:automaticApproval", "@type": "@id" },
            "manualApproval": { "@id": "gts:manualApproval", "@type": "@id" }
        }
    ])
});

/// Serializes as the shared `@context` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context;

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CONTEXT.serialize(serializer)
    }
}
