//! Platform events for the scenarios, built as the platform sends them (JSON envelopes in
//! the shape of `platform-adapter/examples/inbound`), with ids unique to one run.

use serde_json::{Value, json};

use crate::broker::Message;

/// Which authors the post events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// 90% from users who have not opted in, 10% from opted-in users (the S4 definition).
    Mixed,
    /// Every post from a user who has not opted in: the filter path alone.
    NotSharing,
    /// Every post from an opted-in user: the stored path alone.
    Sharing,
}

impl Mix {
    /// Short name for result keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mixed => "mixed",
            Self::NotSharing => "filter",
            Self::Sharing => "stored",
        }
    }

    fn by_sharing_user(self, distinct: u64) -> bool {
        match self {
            Self::Mixed => distinct.is_multiple_of(10),
            Self::NotSharing => false,
            Self::Sharing => true,
        }
    }
}

/// Every `DUPLICATE_EVERY`-th message repeats an earlier event id (5%).
const DUPLICATE_EVERY: u64 = 20;
/// How far back a duplicate reaches, so it is not always adjacent to its original.
const DUPLICATE_LAG: u64 = 10;

/// The users of one run: some who share, some who do not.
#[derive(Debug, Clone)]
pub struct Population {
    tag: String,
    /// Users known to the bridge with sharing off.
    pub not_sharing: u64,
    /// Users with sharing on (and no followers).
    pub sharing: u64,
}

/// What a post stream must leave behind.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected {
    /// Distinct event ids.
    pub distinct: u64,
    /// Messages that repeat an earlier id.
    pub duplicates: u64,
    /// Distinct posts by opted-in users: each must yield exactly one `Create`.
    pub sharing_posts: u64,
    /// Messages that repeat an earlier id of a post by an opted-in user: only those are
    /// recognised as duplicates (a repeated post by someone who does not share is simply
    /// ignored again, as it was the first time).
    pub sharing_duplicates: u64,
}

impl Population {
    /// A population whose ids carry `tag` (unique per run).
    pub fn new(tag: &str, not_sharing: u64, sharing: u64) -> Self {
        Self {
            tag: tag.to_owned(),
            not_sharing,
            sharing,
        }
    }

    fn user_id(&self, sharing: bool, n: u64) -> String {
        let kind = if sharing { "s" } else { "n" };
        format!("u_{}_{kind}{n}", self.tag)
    }

    /// `user.created` for everyone, then `sharing.turned_on` for the sharing users.
    pub fn setup_events(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for (sharing, count) in [(false, self.not_sharing), (true, self.sharing)] {
            for n in 0..count {
                let uid = self.user_id(sharing, n);
                events.push(user_created(&format!("e_{uid}_created"), &uid));
            }
        }
        for n in 0..self.sharing {
            let uid = self.user_id(true, n);
            events.push(sharing_on(&format!("e_{uid}_on"), &uid));
        }
        events
    }

    /// The `n`-th distinct post event of `mix`.
    fn post(&self, mix: Mix, distinct: u64) -> (bool, Value) {
        let sharing = mix.by_sharing_user(distinct);
        let user = if sharing {
            distinct % self.sharing.max(1)
        } else {
            distinct % self.not_sharing.max(1)
        };
        let uid = self.user_id(sharing, user);
        let id = format!("e_{}_p{distinct}", self.tag);
        let pid = format!("p_{}_{distinct}", self.tag);
        (sharing, post_created(&id, &uid, &pid))
    }

    /// What `messages` post events of `mix` contain.
    pub fn expected(&self, mix: Mix, messages: u64) -> Expected {
        let duplicates = messages / DUPLICATE_EVERY;
        let distinct = messages - duplicates;
        let sharing_posts = (0..distinct).filter(|&d| mix.by_sharing_user(d)).count() as u64;
        let sharing_duplicates = self
            .sequence(messages)
            .filter(|(repeat, n)| *repeat && mix.by_sharing_user(*n))
            .count() as u64;
        Expected {
            distinct,
            duplicates,
            sharing_posts,
            sharing_duplicates,
        }
    }

    /// `messages` `post.created` events, every 20th repeating an earlier event id.
    pub fn posts(&self, mix: Mix, messages: u64) -> impl Iterator<Item = Message> + '_ {
        self.sequence(messages).map(move |(_, n)| {
            let (_, event) = self.post(mix, n);
            message(&event)
        })
    }

    /// For each of `messages` messages: whether it repeats an earlier one, and which
    /// distinct post it carries.
    fn sequence(&self, messages: u64) -> impl Iterator<Item = (bool, u64)> + use<> {
        let mut distinct = 0u64;
        (0..messages).map(move |i| {
            if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 {
                (true, distinct.saturating_sub(DUPLICATE_LAG))
            } else {
                distinct += 1;
                (false, distinct - 1)
            }
        })
    }
}

/// An envelope as a broker message: routing key = type, message id = event id.
pub fn message(event: &Value) -> Message {
    let text = |key: &str| {
        event
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Message {
        routing_key: text("type"),
        message_id: text("id"),
        body: event.to_string().into_bytes(),
    }
}

fn envelope(id: &str, kind: &str, order_key: &str, occurred_at: &str, data: Value) -> Value {
    json!({
        "id": id,
        "type": kind,
        "occurred_at": occurred_at,
        "schema_version": 1,
        "order_key": order_key,
        "data": data,
    })
}

fn user_created(id: &str, uid: &str) -> Value {
    envelope(
        id,
        "user.created",
        uid,
        "2026-01-01T00:00:00Z",
        json!({
            "user_id": uid,
            "username": uid,
            "display_name": format!("Bench user {uid}"),
            "bio": "A user of the benchmark.",
            "avatar_url": null,
            "header_url": null,
            "profile_url": format!("https://platform.example/@{uid}"),
            "fields": [],
            "language": "en",
            "public_profile": true,
            "adult": true,
            "suspended": false,
            "account_created_at": "2020-01-01T00:00:00Z",
        }),
    )
}

fn sharing_on(id: &str, uid: &str) -> Value {
    envelope(
        id,
        "sharing.turned_on",
        uid,
        "2026-01-01T00:00:01Z",
        json!({ "user_id": uid, "consent": true }),
    )
}

/// A public `post.created` of about 700 bytes, with a hashtag and a mention.
pub fn post_created(id: &str, uid: &str, pid: &str) -> Value {
    envelope(
        id,
        "post.created",
        uid,
        "2026-01-01T00:00:02Z",
        json!({
            "post_id": pid,
            "author_id": uid,
            "text": format!(
                "Benchmark post {pid}: notes on the Analytical Engine, with a table of \
                 Bernoulli numbers and a question for @babbage@mathstodon.example #maths"
            ),
            "visibility": "public",
            "age_restricted": false,
            "reply_to": null,
            "quote_of": null,
            "media": [],
            "mentions": [{
                "handle": "@babbage@mathstodon.example",
                "url": "https://mathstodon.example/@babbage"
            }],
            "hashtags": ["maths"],
            "content_warning": null,
            "sensitive": false,
            "language": "en",
            "reply_policy": "everyone",
            "quote_policy": "everyone",
            "created_via_api": false,
            "created_at": "2026-01-01T00:00:02Z",
            "edited_at": null,
        }),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn streams_hold_what_expected_says_and_decode() {
        let population = Population::new("t", 10, 3);
        for mix in [Mix::Mixed, Mix::NotSharing, Mix::Sharing] {
            let expected = population.expected(mix, 400);
            let messages: Vec<Message> = population.posts(mix, 400).collect();
            let ids: HashSet<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
            assert_eq!(
                messages.len() as u64,
                expected.distinct + expected.duplicates
            );
            assert_eq!(ids.len() as u64, expected.distinct, "{mix:?}");
            assert_eq!(expected.duplicates, 20);
            for m in &messages {
                platform_adapter::decode_inbound(&m.body).expect("valid post.created");
            }
        }
        assert_eq!(population.expected(Mix::Mixed, 400).sharing_posts, 38);
        for event in population.setup_events() {
            platform_adapter::decode_inbound(event.to_string().as_bytes()).expect("valid");
        }
    }
}
