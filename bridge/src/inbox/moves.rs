//! `Move`: a follower moved to another account.

use url::Url;

use super::{
    context::{Applied, Cx},
    parse::InboundActivity,
    rejection::InboxRejection,
};
use crate::{
    db::{AnyConnection, remote_actors},
    error::Error,
    federation::{fetch::Fetcher, urls::Urls},
};

/// The new account of a `Move`, when the move is confirmed: the object is the actor
/// itself, and the target, fetched from its own origin, lists the actor in `alsoKnownAs`.
pub(super) async fn confirmed_target(
    fetcher: &Fetcher<'_>,
    urls: &Urls,
    activity: &InboundActivity,
) -> Result<Option<Url>, Error> {
    if activity.object_id().as_ref() != Some(&activity.actor) {
        return Err(InboxRejection::Malformed("a Move must move its own actor".into()).into());
    }
    let Some(target) = activity.target_id() else {
        return Err(InboxRejection::Malformed("a Move needs a target".into()).into());
    };
    if urls.is_local(&target) || target == activity.actor {
        return Ok(None);
    }
    match fetcher.refresh_actor(&target).await {
        Ok(doc) if doc.also_known_as.contains(&activity.actor) => Ok(Some(target)),
        Ok(_) => Ok(None),
        Err(e) if matches!(e, Error::Remote { .. } | Error::FetchBudgetExhausted(_)) => {
            tracing::info!(%target, error = %e, "the target of a Move cannot be fetched");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Records where the actor went. Our users follow nobody, so there is nothing to re-follow;
/// its follows of our users stay with the old account until the new one follows.
pub(super) fn apply(conn: &mut AnyConnection, cx: &Cx, target: &Url) -> Result<Applied, Error> {
    remote_actors::set_moved_to(conn, cx.actor.id, target.as_str())?;
    Ok(Applied::accepted())
}
