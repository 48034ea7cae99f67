//! Remote Notes (replies, mentions, quotes) as the platform receives them.

use chrono::{DateTime, Utc};
use serde_json::Value;
use url::Url;

use super::{
    parse::{parse_http_url, value_id},
    rejection::InboxRejection,
    sanitize::{plain_text, sanitize_html},
};
use crate::federation::fetch::first_url;

/// Object types read as posts, as Mastodon does.
const NOTE_TYPES: [&str; 4] = ["Note", "Article", "Page", "Question"];

/// Tags looked at, at most (the rest cannot mention anyone we would notify).
const MAX_TAGS: usize = 100;

/// Contract limits (`platform_adapter::events::limits`), in characters.
const MAX_HTML: usize = 100_000;
const MAX_TEXT: usize = 50_000;
const MAX_CONTENT_WARNING: usize = 1_000;
const MAX_LANGUAGE: usize = 35;

/// A remote post, checked and sanitized.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteNote {
    /// Its id, on its author's origin.
    pub id: Url,
    /// What it answers.
    pub in_reply_to: Option<Url>,
    /// What it quotes (`quote`, `quoteUrl`, `quoteUri`, `_misskey_quote`).
    pub quote: Option<Url>,
    /// Actors it mentions (`Mention` tags).
    pub mentions: Vec<Url>,
    /// Sanitized HTML.
    pub content_html: String,
    /// Plain text.
    pub content_text: String,
    /// BCP 47, from `contentMap`.
    pub language: Option<String>,
    /// When its author published it.
    pub published: DateTime<Utc>,
    /// Its page for people.
    pub url: Option<Url>,
    /// Media hidden until clicked.
    pub sensitive: bool,
    /// `summary`, as plain text.
    pub content_warning: Option<String>,
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Ids named by an `attributedTo`-like value: a URL, an object, or a list of them.
fn ids(value: &Value) -> Vec<Url> {
    match value {
        Value::Array(items) => items.iter().take(MAX_TAGS).filter_map(value_id).collect(),
        other => value_id(other).into_iter().collect(),
    }
}

fn string_field<'a>(json: &'a Value, name: &str) -> Option<&'a str> {
    json.get(name).and_then(Value::as_str)
}

/// Reads `json` as a post by `actor`: `Ok(None)` when it is not a post type; refused when
/// it is not on the actor's origin or is attributed to someone else.
pub fn read_note(json: &Value, actor: &Url) -> Result<Option<RemoteNote>, InboxRejection> {
    let Some(kind) = string_field(json, "type") else {
        return Err(InboxRejection::Malformed("the object has no type".into()));
    };
    if !NOTE_TYPES.contains(&kind) {
        return Ok(None);
    }
    let id = value_id(json)
        .ok_or_else(|| InboxRejection::Malformed("the object's id is not a URL".into()))?;
    if id.origin() != actor.origin() {
        return Err(InboxRejection::Malformed(
            "the object is not on its actor's origin".into(),
        ));
    }
    let authors = json.get("attributedTo").map(ids).unwrap_or_default();
    if authors.is_empty() || authors.iter().any(|a| a != actor) {
        return Err(InboxRejection::Malformed(
            "the object is not attributed to the activity's actor".into(),
        ));
    }

    let (raw_html, language) = match string_field(json, "content") {
        Some(content) => (
            content.to_owned(),
            json.get("contentMap")
                .and_then(Value::as_object)
                .and_then(|m| m.keys().next().cloned()),
        ),
        None => match json.get("contentMap").and_then(Value::as_object) {
            Some(map) => map
                .iter()
                .find_map(|(lang, v)| Some((v.as_str()?.to_owned(), Some(lang.clone()))))
                .unwrap_or_default(),
            None => (String::new(), None),
        },
    };
    let mut content_html = sanitize_html(&raw_html);
    let content_text = truncate(&plain_text(&content_html), MAX_TEXT);
    if content_html.chars().count() > MAX_HTML {
        // Cutting markup could leave it unbalanced; the text, escaped, is always valid.
        content_html = format!("<p>{}</p>", escape(&content_text));
    }

    let mentions = json
        .get("tag")
        .map(|tags| match tags {
            Value::Array(items) => items.iter().take(MAX_TAGS).collect::<Vec<_>>(),
            one => vec![one],
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|tag| string_field(tag, "type") == Some("Mention"))
        .filter_map(|tag| string_field(tag, "href").and_then(parse_http_url))
        .collect();
    let quote = ["quote", "quoteUrl", "quoteUri", "_misskey_quote"]
        .iter()
        .find_map(|name| json.get(*name).and_then(value_id));
    let content_warning = string_field(json, "summary")
        .map(|s| truncate(&plain_text(&sanitize_html(s)), MAX_CONTENT_WARNING))
        .filter(|s| !s.is_empty());

    Ok(Some(RemoteNote {
        in_reply_to: json.get("inReplyTo").and_then(value_id),
        quote,
        mentions,
        content_html,
        content_text,
        language: language
            .filter(|l| l.len() <= MAX_LANGUAGE && !l.is_empty())
            .map(|l| truncate(&l, MAX_LANGUAGE)),
        published: string_field(json, "published")
            .and_then(|p| DateTime::parse_from_rfc3339(p).ok())
            .map(|p| p.with_timezone(&Utc))
            .unwrap_or_else(Utc::now),
        url: json.get("url").and_then(first_url),
        sensitive: json
            .get("sensitive")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        content_warning,
        id,
    }))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn actor() -> Url {
        Url::parse("https://r.example/users/bob").expect("url")
    }

    #[test]
    fn a_reply_is_read_and_sanitized() {
        let note = read_note(
            &json!({
                "id": "https://r.example/users/bob/statuses/1",
                "type": "Note",
                "attributedTo": "https://r.example/users/bob",
                "inReplyTo": "https://bridge.example/posts/9",
                "content": "<p>hi <script>x</script><b>there</b></p>",
                "contentMap": {"en": "<p>hi</p>"},
                "summary": "cw <i>here</i>",
                "sensitive": true,
                "published": "2026-01-02T03:04:05Z",
                "tag": [
                    {"type": "Mention", "href": "https://bridge.example/users/1"},
                    {"type": "Hashtag", "href": "https://r.example/tags/x"}
                ],
                "_misskey_quote": "https://bridge.example/posts/8"
            }),
            &actor(),
        )
        .expect("valid")
        .expect("a note");
        assert_eq!(note.content_html, "<p>hi <b>there</b></p>");
        assert_eq!(note.content_text, "hi there");
        assert_eq!(note.language.as_deref(), Some("en"));
        assert_eq!(note.content_warning.as_deref(), Some("cw here"));
        assert_eq!(note.mentions.len(), 1);
        assert_eq!(
            note.quote.map(String::from).as_deref(),
            Some("https://bridge.example/posts/8")
        );
        assert!(note.sensitive);
    }

    #[test]
    fn oversized_fields_and_lists_are_cut_to_the_contract_limits() {
        let tags: Vec<_> = (0..5_000)
            .map(|n| json!({"type": "Mention", "href": format!("https://r.example/users/{n}")}))
            .collect();
        let note = read_note(
            &json!({
                "id": "https://r.example/users/bob/statuses/2",
                "type": "Note",
                "attributedTo": "https://r.example/users/bob",
                "content": format!("<p>{}</p>", "<b>x</b>".repeat(60_000)),
                "summary": "w".repeat(10_000),
                "contentMap": {("x".repeat(100)): "<p>x</p>"},
                "tag": tags,
            }),
            &actor(),
        )
        .expect("valid")
        .expect("a note");
        assert_eq!(note.mentions.len(), MAX_TAGS);
        assert!(note.content_html.chars().count() <= MAX_HTML + 7);
        assert!(
            !note.content_html.contains("<b>"),
            "cut as text, never as markup"
        );
        assert_eq!(note.content_text.chars().count(), MAX_TEXT);
        assert_eq!(
            note.content_warning.map(|w| w.chars().count()),
            Some(MAX_CONTENT_WARNING)
        );
        assert_eq!(note.language, None);
    }

    #[test]
    fn origin_and_attribution_are_enforced() {
        let elsewhere = json!({
            "id": "https://other.example/n/1", "type": "Note",
            "attributedTo": "https://r.example/users/bob", "content": "x"
        });
        assert!(read_note(&elsewhere, &actor()).is_err());
        let someone_else = json!({
            "id": "https://r.example/n/1", "type": "Note",
            "attributedTo": "https://r.example/users/eve", "content": "x"
        });
        assert!(read_note(&someone_else, &actor()).is_err());
        let not_a_post = json!({"id": "https://r.example/x", "type": "Image"});
        assert_eq!(read_note(&not_a_post, &actor()), Ok(None));
    }
}
