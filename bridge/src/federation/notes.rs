//! Building a post's Note with its reply and quote links resolved against storage.

use super::{
    protocol::note::{Note, NoteLinks},
    urls::Urls,
};
use crate::{
    db::{
        AnyConnection,
        posts::{self, FederationState, Post},
        users::{self, User},
    },
    error::Error,
    opt_in::SharingState,
};

/// The URL of a platform post as a fediverse object, if it is one: federated and its author
/// still sharing. A reply to anything else federates as a top-level post rather than
/// pointing at content that is not public on the fediverse.
fn federated_url(
    conn: &mut AnyConnection,
    platform_post_id: &str,
    urls: &Urls,
) -> Result<Option<String>, Error> {
    let Some(post) = posts::find_by_platform_id(conn, platform_post_id)? else {
        return Ok(None);
    };
    if post.federation() != FederationState::Federated || !post.content_is_shareable() {
        return Ok(None);
    }
    let author_shares =
        users::find(conn, post.user_id)?.is_some_and(|u| u.sharing() == SharingState::On);
    Ok(author_shares.then(|| urls.note(&post.platform_post_id).to_string()))
}

/// Resolves where a post's reply and quote point.
pub fn links(conn: &mut AnyConnection, post: &Post, urls: &Urls) -> Result<NoteLinks, Error> {
    let in_reply_to = match &post.reply_to_platform_post_id {
        Some(id) => federated_url(conn, id, urls)?,
        None => post.reply_to_url.clone(),
    };
    let quote = match &post.quote_of_platform_post_id {
        Some(id) => federated_url(conn, id, urls)?,
        None => post.quote_of_url.clone(),
    };
    Ok(NoteLinks { in_reply_to, quote })
}

/// The Note of `post` by `author`.
pub fn build(
    conn: &mut AnyConnection,
    post: &Post,
    author: &User,
    urls: &Urls,
) -> Result<Note, Error> {
    let links = links(conn, post, urls)?;
    Ok(Note::from_post(post, author, links, urls))
}
