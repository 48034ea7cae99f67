//! Server-rendered HTML for people who open actor or post URLs in a browser.

use crate::{
    db::{posts::Post, users::User},
    federation::{content::escape, protocol::note::Note, urls::Urls},
};

/// Wraps a body in the shared page layout.
pub fn layout(title: &str, lang: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}}
header img{{width:4rem;height:4rem;border-radius:50%;object-fit:cover}}
.handle{{color:#555;font-family:monospace}}
article{{border-top:1px solid #ddd;padding:1rem 0}}
time{{color:#555;font-size:.9rem}}
form{{margin:1rem 0;padding:1rem;background:#f4f4f6;border-radius:.5rem}}
label{{display:block;font-weight:600;margin-bottom:.25rem}}
input[type=text]{{padding:.4rem;width:60%}}
button{{padding:.4rem .8rem}}
</style>
</head>
<body>
{body}
</body>
</html>
"#,
        title = escape(title),
        lang = escape(lang),
    )
}

/// The bridged profile with its shared posts and a remote-follow form.
pub fn profile(user: &User, notes: &[Note], urls: &Urls) -> String {
    let handle = format!("@{}", urls.handle(&user.username));
    let name = user
        .display_name
        .clone()
        .unwrap_or_else(|| user.username.clone());
    let avatar = user
        .avatar_url
        .as_deref()
        .map(|a| format!(r#"<img src="{}" alt="">"#, escape(a)))
        .unwrap_or_default();
    let bio = user
        .bio
        .as_deref()
        .map(crate::federation::content::render_plain)
        .unwrap_or_default();
    let posts: String = notes.iter().map(note_article).collect();
    let body = format!(
        r#"<header>{avatar}<h1>{name}</h1><p class="handle">{handle}</p>{bio}</header>
<form method="get" action="{follow}">
<label for="acct">Follow {name} from your fediverse server</label>
<input type="hidden" name="uri" value="{handle_raw}">
<input type="text" id="acct" name="acct" placeholder="you@your.server" autocomplete="username">
<button type="submit">Follow</button>
</form>
<main>{posts}</main>"#,
        name = escape(&name),
        handle = escape(&handle),
        handle_raw = escape(&handle),
        follow = escape(urls.authorize_interaction().as_str()),
    );
    layout(
        &format!("{name} ({handle})"),
        user.language.as_deref().unwrap_or("en"),
        &body,
    )
}

fn note_article(note: &Note) -> String {
    let warning = note
        .summary
        .as_deref()
        .map(|s| format!("<p><strong>Content warning:</strong> {}</p>", escape(s)))
        .unwrap_or_default();
    format!(
        r#"<article>{warning}{content}<a href="{url}"><time datetime="{published}">{published}</time></a></article>"#,
        content = note.content,
        url = escape(&note.url),
        published = escape(&note.published),
    )
}

/// One shared post.
pub fn post(user: &User, post: &Post, note: &Note, urls: &Urls) -> String {
    let handle = format!("@{}", urls.handle(&user.username));
    let name = user
        .display_name
        .clone()
        .unwrap_or_else(|| user.username.clone());
    let body = format!(
        r#"<header><h1>{name}</h1><p class="handle"><a href="{actor}">{handle}</a></p></header>{article}"#,
        name = escape(&name),
        handle = escape(&handle),
        actor = escape(urls.actor(&user.platform_user_id).as_str()),
        article = note_article(note),
    );
    layout(
        &format!("{name}: post {}", post.platform_post_id),
        post.language.as_deref().unwrap_or("en"),
        &body,
    )
}
