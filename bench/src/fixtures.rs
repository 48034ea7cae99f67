//! What the delivery scenarios (S1, S2, S5, S6) and the inbox scenario (S3) set up through
//! the bridge's own db functions: local users who share, remote followers on the fake
//! inboxes, published posts, and a running bridge with chosen roles.

use std::time::Duration;

use bridge::{
    Application, Role, Settings,
    db::{
        Database,
        activities::ActivityId,
        deliveries::DeliveryState,
        follows, keys, now_millis,
        posts::{self, FederationState, InteractionPolicy, PostInput, Visibility},
        remote_actors::{self, RemoteActorInput},
        schema::deliveries,
        users::{self, ProfileInput, User},
    },
    federation::{outbound, urls::Urls},
    opt_in::SharingState,
};
use diesel::prelude::*;

use crate::error::Error;

/// A local user with sharing on, eligible, with a key. Returns it and its public key.
pub async fn sharing_user(db: &Database, platform_user_id: &str) -> Result<(User, String), Error> {
    let id = platform_user_id.to_owned();
    Ok(db
        .write(move |c| {
            let now = now_millis();
            let (user, _) = users::upsert_profile(
                c,
                &ProfileInput {
                    platform_user_id: id.clone(),
                    username: id.clone(),
                    display_name: Some(format!("Bench user {id}")),
                    bio: None,
                    avatar_url: None,
                    header_url: None,
                    profile_url: None,
                    fields: vec![],
                    language: Some("en".into()),
                    is_public: true,
                    is_adult: true,
                    is_suspended: false,
                    account_created_at: Some(now - 86_400_000 * 365),
                },
                now,
            )?;
            users::set_sharing_state(c, user.id, SharingState::On, "[]", now)?;
            let key = keys::ensure(c, Some(user.id), now)?;
            let user = users::find(c, user.id)?
                .ok_or_else(|| bridge::Error::Storage("user vanished".into()))?;
            Ok((user, key.public_key_pem))
        })
        .await?)
}

/// `followers` accepted followers of `author`, spread evenly over `authorities`; the
/// followers of one host share its inbox (`http://AUTHORITY/inbox`).
pub async fn follow(
    db: &Database,
    author: &User,
    authorities: &[String],
    followers: usize,
) -> Result<(), Error> {
    let user = author.id;
    for chunk_start in (0..followers).step_by(1_000) {
        let authorities = authorities.to_vec();
        db.write(move |c| {
            let now = now_millis();
            for i in chunk_start..(chunk_start + 1_000).min(followers) {
                let authority = &authorities[i % authorities.len()];
                let ap_id = format!("http://{authority}/users/f{i}");
                let actor = remote_actors::upsert(
                    c,
                    &RemoteActorInput {
                        ap_id: ap_id.clone(),
                        host: authority.clone(),
                        kind: "Person".into(),
                        preferred_username: Some(format!("f{i}")),
                        name: None,
                        url: None,
                        icon_url: None,
                        inbox: format!("{ap_id}/inbox"),
                        shared_inbox: Some(format!("http://{authority}/inbox")),
                        public_key_id: Some(format!("{ap_id}#main-key")),
                        public_key_pem: None,
                        moved_to: None,
                    },
                    now,
                )?;
                follows::upsert(
                    c,
                    user,
                    actor.id,
                    &format!("{ap_id}/follows/1"),
                    follows::FollowState::Accepted,
                    now,
                )?;
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}

/// Stores the public post `platform_post_id` of `author` and publishes it (`Create` to
/// every follower) in one transaction, as event ingest does.
pub async fn publish(
    db: &Database,
    urls: &Urls,
    author: &User,
    platform_post_id: &str,
) -> Result<ActivityId, Error> {
    let (author, urls, pid) = (author.clone(), urls.clone(), platform_post_id.to_owned());
    db.write(move |c| {
        let now = now_millis();
        let (post, _) = posts::upsert(
            c,
            author.id,
            &PostInput {
                platform_post_id: pid.clone(),
                text: format!(
                    "Benchmark post {pid}: notes on the Analytical Engine, with a table of \
                     Bernoulli numbers. #maths"
                ),
                visibility: Visibility::Public,
                age_restricted: false,
                reply_to_platform_post_id: None,
                reply_to_url: None,
                quote_of_platform_post_id: None,
                quote_of_url: None,
                media: vec![],
                mentions: vec![],
                hashtags: vec!["maths".into()],
                content_warning: None,
                sensitive: false,
                language: Some("en".into()),
                reply_policy: InteractionPolicy::Everyone,
                quote_policy: InteractionPolicy::Everyone,
                via_api: false,
                published_at: now,
                edited_at: None,
            },
            now,
        )?;
        debug_assert_eq!(post.federation(), FederationState::Never);
        outbound::publish_post(c, &post, &author, &urls, now)?
            .ok_or_else(|| bridge::Error::Storage("publish_post queued nothing".into()))
    })
    .await
    .map_err(Error::from)
}

/// Deliveries by state, over every activity.
pub async fn states(db: &Database) -> Result<Vec<(String, i64)>, Error> {
    Ok(db
        .run(|c| {
            Ok(deliveries::table
                .group_by(deliveries::state)
                .select((deliveries::state, diesel::dsl::count_star()))
                .load(c)?)
        })
        .await?)
}

/// Deliveries of `host` by state.
pub async fn host_states(db: &Database, host: &str) -> Result<Vec<(String, i64)>, Error> {
    let host = host.to_owned();
    Ok(db
        .run(move |c| {
            Ok(deliveries::table
                .filter(deliveries::host.eq(host))
                .group_by(deliveries::state)
                .select((deliveries::state, diesel::dsl::count_star()))
                .load(c)?)
        })
        .await?)
}

/// The count of `state` in a [`states`] answer.
pub fn count(states: &[(String, i64)], state: DeliveryState) -> i64 {
    states
        .iter()
        .find(|(s, _)| s == state.as_str())
        .map_or(0, |(_, n)| *n)
}

/// A bridge running in this process with some of its roles, as `fedibridge serve` runs them.
pub struct Running {
    shutdown: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), bridge::Error>>,
    /// Wakes the delivery role, as ingest does after storing deliveries.
    pub wakeup: std::sync::Arc<tokio::sync::Notify>,
}

impl Running {
    /// Builds `bridge::Application` with `roles` and runs it.
    pub async fn start(settings: Settings, roles: &[Role]) -> Result<Self, Error> {
        let app = Application::build(settings, roles).await?;
        let wakeup = app.state().delivery_wakeup.clone();
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(Self {
            shutdown,
            task,
            wakeup,
        })
    }

    /// Stops it gracefully (bounded).
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(40), self.task).await;
    }
}

/// Waits until no delivery is pending; returns the time since `started` and whether it
/// finished before `limit`.
pub async fn until_settled(
    db: &Database,
    started: std::time::Instant,
    limit: Duration,
) -> Result<(Duration, bool), Error> {
    loop {
        // A cheap probe while work is pending (one index entry), the full count once none
        // is: the observer must not load the database it measures.
        if !any_pending(db).await? {
            let now = states(db).await?;
            if count(&now, DeliveryState::Pending) == 0 && now.iter().any(|(_, n)| *n > 0) {
                return Ok((started.elapsed(), true));
            }
        }
        if started.elapsed() >= limit {
            return Ok((started.elapsed(), false));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Whether any delivery is still pending.
async fn any_pending(db: &Database) -> Result<bool, Error> {
    Ok(db
        .run(|c| {
            Ok(diesel::select(diesel::dsl::exists(
                deliveries::table.filter(deliveries::state.eq(DeliveryState::Pending.as_str())),
            ))
            .get_result(c)?)
        })
        .await?)
}
