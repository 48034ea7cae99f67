//! Turning the platform's plain text into the HTML and tags that fediverse servers show.
//!
//! The platform sends text, not HTML, so everything is escaped first and only links,
//! mentions and hashtags that we build ourselves become markup.

use serde::Serialize;

use super::urls::Urls;
use crate::db::posts::MentionItem;

/// A `tag` entry of a Note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Tag {
    /// Somebody mentioned.
    Mention {
        /// Actor URL.
        href: String,
        /// `@name@server`.
        name: String,
    },
    /// A hashtag.
    Hashtag {
        /// Tag page.
        href: String,
        /// `#tag`.
        name: String,
    },
}

/// HTML content and the tags found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Safe HTML.
    pub html: String,
    /// Mentions and hashtags.
    pub tags: Vec<Tag>,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Renders plain text (a bio) as paragraphs with links.
pub fn render_plain(text: &str) -> String {
    render(text, &[], &[], None).html
}

/// Renders a post: paragraphs, links, the given mentions and hashtags, and their tags.
pub fn render_post(
    text: &str,
    mentions: &[MentionItem],
    hashtags: &[String],
    urls: &Urls,
) -> Rendered {
    render(text, mentions, hashtags, Some(urls))
}

fn render(
    text: &str,
    mentions: &[MentionItem],
    hashtags: &[String],
    urls: Option<&Urls>,
) -> Rendered {
    let mut tags = Vec::new();
    let mut paragraphs = Vec::new();
    let normalized = text.replace("\r\n", "\n");
    for paragraph in normalized
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let lines: Vec<String> = paragraph
            .split('\n')
            .map(|line| render_line(line, mentions, hashtags, urls, &mut tags))
            .collect();
        paragraphs.push(format!("<p>{}</p>", lines.join("<br>")));
    }
    if let Some(urls) = urls {
        // Hashtags the platform lists but the text does not show still tag the post.
        for tag in hashtags {
            let name = format!("#{}", tag.trim_start_matches('#'));
            if !tags
                .iter()
                .any(|t| matches!(t, Tag::Hashtag { name: n, .. } if n.eq_ignore_ascii_case(&name)))
            {
                tags.push(Tag::Hashtag {
                    href: urls.tag(tag.trim_start_matches('#')).to_string(),
                    name,
                });
            }
        }
        for mention in mentions {
            if let Some(href) = &mention.url {
                let name = normalize_handle(&mention.handle);
                if !tags
                    .iter()
                    .any(|t| matches!(t, Tag::Mention { href: h, .. } if h == href))
                {
                    tags.push(Tag::Mention {
                        href: href.clone(),
                        name,
                    });
                }
            }
        }
    }
    Rendered {
        html: paragraphs.concat(),
        tags,
    }
}

fn normalize_handle(handle: &str) -> String {
    format!("@{}", handle.trim_start_matches('@'))
}

fn render_line(
    line: &str,
    mentions: &[MentionItem],
    hashtags: &[String],
    urls: Option<&Urls>,
    tags: &mut Vec<Tag>,
) -> String {
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        let Some((start, token)) = next_token(rest) else {
            out.push_str(&escape(rest));
            break;
        };
        out.push_str(&escape(&rest[..start]));
        let raw = &rest[start..start + token.len];
        out.push_str(&match token.kind {
            TokenKind::Link => format!(
                r#"<a href="{0}" rel="nofollow noopener noreferrer" target="_blank">{0}</a>"#,
                escape(raw)
            ),
            TokenKind::Mention => {
                let wanted = normalize_handle(raw).to_lowercase();
                match mentions
                    .iter()
                    .find(|m| normalize_handle(&m.handle).to_lowercase() == wanted)
                    .and_then(|m| m.url.as_ref())
                {
                    Some(href) => {
                        let name = normalize_handle(raw);
                        let local = name.trim_start_matches('@').split('@').next().unwrap_or_default();
                        tags.push(Tag::Mention { href: href.clone(), name: name.clone() });
                        format!(
                            r#"<span class="h-card"><a href="{}" class="u-url mention">@<span>{}</span></a></span>"#,
                            escape(href),
                            escape(local)
                        )
                    }
                    None => escape(raw),
                }
            }
            TokenKind::Hashtag => {
                let name = raw.trim_start_matches('#');
                match urls.filter(|_| hashtags.iter().any(|h| h.trim_start_matches('#').eq_ignore_ascii_case(name))) {
                    Some(urls) => {
                        let href = urls.tag(name).to_string();
                        tags.push(Tag::Hashtag { href: href.clone(), name: format!("#{name}") });
                        format!(
                            r#"<a href="{}" class="mention hashtag" rel="tag">#<span>{}</span></a>"#,
                            escape(&href),
                            escape(name)
                        )
                    }
                    None => escape(raw),
                }
            }
        });
        rest = &rest[start + token.len..];
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum TokenKind {
    Link,
    Mention,
    Hashtag,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: TokenKind,
    len: usize,
}

/// Finds the next link, mention or hashtag: (byte offset, token).
fn next_token(text: &str) -> Option<(usize, Token)> {
    let mut previous: Option<char> = None;
    for (i, c) in text.char_indices() {
        let at_boundary = previous.is_none_or(|p| p.is_whitespace() || "([{\"'".contains(p));
        previous = Some(c);
        if !at_boundary {
            continue;
        }
        let rest = &text[i..];
        if rest.starts_with("https://") || rest.starts_with("http://") {
            let mut len = rest.find(char::is_whitespace).unwrap_or(rest.len());
            // Sentence punctuation after a link is not part of it.
            while len > 0 && rest[..len].ends_with(['.', ',', ')', '!', '?', ';', ':', '"', '\'']) {
                len -= 1;
            }
            if len > "https://".len() {
                return Some((
                    i,
                    Token {
                        kind: TokenKind::Link,
                        len,
                    },
                ));
            }
        } else if c == '@' {
            let len = 1 + rest[1..]
                .find(|ch: char| !(ch.is_alphanumeric() || "_.-@:".contains(ch)))
                .unwrap_or(rest.len() - 1);
            let candidate = rest[..len].trim_end_matches(['.', ':', '-']);
            if candidate.len() > 1 {
                return Some((
                    i,
                    Token {
                        kind: TokenKind::Mention,
                        len: candidate.len(),
                    },
                ));
            }
        } else if c == '#' {
            let len = 1 + rest[1..]
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len() - 1);
            if len > 1 {
                return Some((
                    i,
                    Token {
                        kind: TokenKind::Hashtag,
                        len,
                    },
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::FederationSettings;

    fn urls() -> Urls {
        Urls::new(&FederationSettings {
            base_url: "https://fedi.example".into(),
            domain: "example.org".into(),
            allow_private_addresses: false,
            signature_window_secs: 3600,
        })
        .expect("valid")
    }

    #[test]
    fn text_is_escaped_and_paragraphed() {
        let html = render_plain("<script>alert('x')</script> & co\nline two\n\nsecond");
        assert_eq!(
            html,
            "<p>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co<br>line two</p><p>second</p>"
        );
    }

    #[test]
    fn links_mentions_and_hashtags_become_markup_and_tags() {
        let mentions = vec![MentionItem {
            handle: "@bob@social.example".into(),
            url: Some("https://social.example/users/bob".into()),
        }];
        let r = render_post(
            "Hi @bob@social.example, see https://x.example/a?b=1&c=2. #Rust #unlisted",
            &mentions,
            &["rust".into(), "fediverse".into()],
            &urls(),
        );
        assert!(r.html.contains(r#"<a href="https://social.example/users/bob" class="u-url mention">@<span>bob</span></a>"#), "{}", r.html);
        assert!(r.html.contains(r#"<a href="https://x.example/a?b=1&amp;c=2" rel="nofollow noopener noreferrer" target="_blank">https://x.example/a?b=1&amp;c=2</a>."#), "{}", r.html);
        assert!(r.html.contains(r#"<a href="https://fedi.example/tags/rust" class="mention hashtag" rel="tag">#<span>Rust</span></a>"#), "{}", r.html);
        // Not a platform hashtag: stays text.
        assert!(r.html.contains(" #unlisted</p>"), "{}", r.html);
        assert!(r.tags.contains(&Tag::Mention {
            href: "https://social.example/users/bob".into(),
            name: "@bob@social.example".into()
        }));
        assert!(r.tags.contains(&Tag::Hashtag {
            href: "https://fedi.example/tags/fediverse".into(),
            name: "#fediverse".into()
        }));
        assert_eq!(
            r.tags
                .iter()
                .filter(|t| matches!(t, Tag::Hashtag { .. }))
                .count(),
            2
        );
    }

    #[test]
    fn unknown_mentions_and_emails_stay_text() {
        let r = render_post(
            "mail me@example.com or @nobody@x.example",
            &[],
            &[],
            &urls(),
        );
        assert_eq!(r.html, "<p>mail me@example.com or @nobody@x.example</p>");
        assert!(r.tags.is_empty());
    }
}
