//! Remote HTML made safe for the platform: Mastodon's subset of tags, http(s) links only,
//! and a plain-text rendering.

use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};

/// The sanitizer for post content: text structure, links and the microformat classes
/// Mastodon uses for mentions and hashtags; nothing that runs, styles or embeds.
static CONTENT: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut builder = Builder::empty();
    builder
        .add_tags([
            "p",
            "br",
            "a",
            "span",
            "b",
            "strong",
            "i",
            "em",
            "u",
            "s",
            "del",
            "blockquote",
            "code",
            "pre",
            "ul",
            "ol",
            "li",
        ])
        .add_tag_attributes("a", ["href"])
        .add_allowed_classes("a", ["mention", "hashtag", "u-url"])
        .add_allowed_classes("span", ["h-card", "invisible", "ellipsis"])
        .url_schemes(["http", "https"].into_iter().collect())
        .url_relative(UrlRelative::Deny)
        .link_rel(Some("nofollow noopener noreferrer"));
    builder
});

/// Removes every tag, keeping the text.
static TEXT: LazyLock<Builder<'static>> = LazyLock::new(Builder::empty);

/// Sanitized HTML of remote content.
pub fn sanitize_html(html: &str) -> String {
    CONTENT.clean(html).to_string()
}

/// Plain text of (already sanitized) HTML: paragraphs and line breaks become newlines.
pub fn plain_text(sanitized_html: &str) -> String {
    // The input is ammonia's own serialization, so `<br>` and `</p>` have one spelling.
    let with_breaks = sanitized_html
        .replace("<br>", "\n")
        .replace("</p>", "</p>\n\n")
        .replace("</li>", "</li>\n");
    let text = TEXT.clean(&with_breaks).to_string();
    unescape(&text).trim().to_owned()
}

/// Undoes the escaping of html5ever's serializer, which is all that can be left in text it
/// wrote: `&amp;` last so that `&amp;lt;` becomes `&lt;`, not `<`.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_and_foreign_links_are_removed() {
        let html = r#"<p onclick="x()">Hi <a href="javascript:alert(1)">x</a> <a href="https://r.example/@a" class="u-url mention evil">@a</a><script>alert(1)</script><img src=x onerror=y></p>"#;
        let clean = sanitize_html(html);
        assert!(!clean.contains("onclick"), "{clean}");
        assert!(!clean.contains("javascript"), "{clean}");
        assert!(!clean.contains("script"), "{clean}");
        assert!(!clean.contains("<img"), "{clean}");
        assert!(!clean.contains("evil"), "{clean}");
        assert!(clean.contains(r#"href="https://r.example/@a""#), "{clean}");
        assert!(clean.contains("nofollow noopener noreferrer"), "{clean}");
    }

    #[test]
    fn text_keeps_lines_and_characters() {
        let clean = sanitize_html("<p>a &amp; b &lt;c&gt;<br>second</p><p>third &amp;lt;</p>");
        assert_eq!(plain_text(&clean), "a & b <c>\nsecond\n\nthird &lt;");
    }
}
