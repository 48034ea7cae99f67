//! Fixtures for the opt-in tests: a bridge with the toggle API and settings page enabled,
//! direct storage access, and seeded users, followers, posts and ledger entries.

use std::sync::Arc;

use bridge::{
    Role,
    db::{
        AnyConnection, Database, follows, ledger, posts, remote_actors,
        schema::{activities, deliveries},
        users::{self, ProfileInput, User, UserId},
    },
    federation::{outbound, urls::Urls},
    ingest::Ingest,
};
use diesel::prelude::*;
use tokio::sync::Notify;

use crate::{Backend, TestApp, TestDatabase, test_settings};

/// Bearer token of the test apps.
pub const TOKEN: &str = "test-platform-token";

/// Settings-link secret of the test apps.
pub const SECRET: &str = "test-settings-secret";

/// A running bridge (HTTP role only, so queued deliveries stay put) and its storage.
pub struct SharingApp {
    /// The app.
    pub app: TestApp,
    /// Its database.
    pub db: Database,
    /// Its URL scheme.
    pub urls: Urls,
    /// Its settings.
    pub settings: Arc<bridge::Settings>,
    _database: TestDatabase,
}

impl SharingApp {
    /// Starts one on `backend` with `overrides`; `None` when PostgreSQL is missing locally.
    pub async fn start(backend: Backend, overrides: &[(&str, &str)]) -> Option<Self> {
        let database = TestDatabase::new(backend)?;
        let mut all = vec![
            ("FEDIBRIDGE__PLATFORM__API_TOKEN", TOKEN),
            ("FEDIBRIDGE__PLATFORM__SETTINGS_LINK_SECRET", SECRET),
            ("FEDIBRIDGE__FEDERATION__BASE_URL", "https://bridge.example"),
            ("FEDIBRIDGE__FEDERATION__DOMAIN", "bridge.example"),
        ];
        all.extend_from_slice(overrides);
        let settings = test_settings(&database, &all);
        let db = Database::new(&settings.database).expect("database");
        let urls = Urls::new(&settings.federation).expect("urls");
        let app = TestApp::spawn_roles(settings.clone(), &[Role::Http]).await;
        Some(Self {
            app,
            db,
            urls,
            settings: Arc::new(settings),
            _database: database,
        })
    }

    /// A request builder for an API path (below `/api/v1`) with the bearer token.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .client
            .request(method, format!("{}/api/v1{path}", self.app.address))
            .bearer_auth(TOKEN)
    }

    /// The event sink, as the consumer would use it.
    pub fn ingest(&self) -> Ingest {
        Ingest::new(
            self.db.clone(),
            self.urls.clone(),
            self.settings.clone(),
            Arc::new(Notify::new()),
        )
    }

    /// Stores a user; `eligible` sets every eligibility fact.
    pub async fn user(&self, platform_id: &str, username: &str, eligible: bool) -> User {
        let input = profile(platform_id, username, eligible);
        self.db
            .write(move |c| users::upsert_profile(c, &input, bridge::db::now_millis()))
            .await
            .expect("store user")
            .0
    }

    /// Stores a remote actor on `host` following `user` (`accepted` or pending).
    pub async fn follower(&self, user: &User, host: &str, name: &str, accepted: bool) -> String {
        let user_id = user.id;
        let actor = remote_person(
            &format!("https://{host}"),
            host,
            name,
            Some(format!("https://{host}/inbox")),
        );
        let ap_id = actor.ap_id.clone();
        let follow_id = format!("https://{host}/follows/{name}");
        self.db
            .write(move |c| {
                insert_follower(
                    c,
                    user_id,
                    &actor,
                    &follow_id,
                    accepted,
                    bridge::db::now_millis(),
                )
            })
            .await
            .expect("store follower");
        ap_id
    }

    /// Stores a public post of `user`; `publish` federates it (`Create`) when sharing.
    pub async fn post(&self, user: &User, post_id: &str, publish: bool) -> posts::Post {
        let user_id = user.id;
        let urls = self.urls.clone();
        let input = post_input(post_id);
        self.db
            .write(move |c| {
                let now = bridge::db::now_millis();
                let (post, _) = posts::upsert(c, user_id, &input, now)?;
                if publish {
                    let author = users::find(c, user_id)?.expect("author");
                    outbound::publish_post(c, &post, &author, &urls, now)?;
                }
                Ok(posts::find(c, post.id)?.expect("post"))
            })
            .await
            .expect("store post")
    }

    /// Records that `host` holds `object` of `user` (it fetched it), with its inbox.
    pub async fn ledger(&self, user: &User, object: &str, host: &str) {
        let user_id = user.id;
        let object = object.to_owned();
        let host = host.to_owned();
        self.db
            .write(move |c| {
                ledger::record(
                    c,
                    user_id,
                    &object,
                    &host,
                    Some(&format!("https://{host}/inbox")),
                    ledger::Via::Fetched,
                    bridge::db::now_millis(),
                )
            })
            .await
            .expect("ledger");
    }

    /// The user as stored now.
    pub async fn reload(&self, platform_id: &str) -> User {
        let id = platform_id.to_owned();
        self.db
            .run(move |c| users::find_by_platform_id(c, &id))
            .await
            .expect("read")
            .expect("user exists")
    }

    /// Every stored activity of `user`: (kind, object, payload, inboxes of its deliveries).
    pub async fn activities(&self, user: &User) -> Vec<QueuedActivity> {
        let user_id = user.id.0;
        self.db
            .run(move |c| {
                let rows: Vec<(i64, String, Option<String>, String)> = activities::table
                    .filter(activities::user_id.eq(user_id))
                    .order(activities::id.asc())
                    .select((
                        activities::id,
                        activities::kind,
                        activities::object_ap_id,
                        activities::payload,
                    ))
                    .load(c)?;
                let mut out = Vec::new();
                for (id, kind, object, payload) in rows {
                    let mut inboxes: Vec<String> = deliveries::table
                        .filter(deliveries::activity_id.eq(id))
                        .select(deliveries::inbox)
                        .load(c)?;
                    inboxes.sort();
                    out.push(QueuedActivity {
                        kind,
                        object,
                        payload: serde_json::from_str(&payload).expect("payload JSON"),
                        inboxes,
                    });
                }
                Ok(out)
            })
            .await
            .expect("read activities")
    }

    /// Sets the state of every delivery to inboxes on `host` (simulating its answers).
    pub async fn answer(&self, host: &str, state: &str, status: Option<i32>) {
        let host = host.to_owned();
        let state = state.to_owned();
        self.db
            .write(move |c| {
                diesel::update(deliveries::table.filter(deliveries::host.eq(host)))
                    .set((
                        deliveries::state.eq(state),
                        deliveries::last_status.eq(status),
                    ))
                    .execute(c)?;
                Ok(())
            })
            .await
            .expect("update deliveries");
    }
}

/// The Person `name` of the server at `base` (host `host`), with its inbox at
/// `{id}/inbox`.
pub fn remote_person(
    base: &str,
    host: &str,
    name: &str,
    shared_inbox: Option<String>,
) -> remote_actors::RemoteActorInput {
    let ap_id = format!("{base}/users/{name}");
    remote_actors::RemoteActorInput {
        ap_id: ap_id.clone(),
        host: host.to_owned(),
        kind: "Person".into(),
        preferred_username: Some(name.to_owned()),
        name: Some(name.to_uppercase()),
        url: Some(format!("{base}/@{name}")),
        icon_url: None,
        inbox: format!("{ap_id}/inbox"),
        shared_inbox,
        public_key_id: Some(format!("{ap_id}#main-key")),
        public_key_pem: None,
        moved_to: None,
    }
}

/// Stores `actor` following `user` through the Follow `follow_id` (`accepted` or pending).
/// For use inside a write transaction.
pub fn insert_follower(
    c: &mut AnyConnection,
    user: UserId,
    actor: &remote_actors::RemoteActorInput,
    follow_id: &str,
    accepted: bool,
    now: i64,
) -> Result<(), bridge::Error> {
    let remote = remote_actors::upsert(c, actor, now)?;
    let state = if accepted {
        follows::FollowState::Accepted
    } else {
        follows::FollowState::Pending
    };
    follows::upsert(c, user, remote.id, follow_id, state, now)?;
    Ok(())
}

/// A stored outbound activity, for assertions.
#[derive(Debug, Clone)]
pub struct QueuedActivity {
    /// `Create`, `Delete`, …
    pub kind: String,
    /// Its object id.
    pub object: Option<String>,
    /// The JSON sent.
    pub payload: serde_json::Value,
    /// Inboxes it is queued for, sorted.
    pub inboxes: Vec<String>,
}

/// Platform facts of a user.
pub fn profile(platform_id: &str, username: &str, eligible: bool) -> ProfileInput {
    ProfileInput {
        platform_user_id: platform_id.to_owned(),
        username: username.to_owned(),
        display_name: Some(format!("{username} display")),
        bio: Some("Bio.".into()),
        avatar_url: None,
        header_url: None,
        profile_url: Some(format!("https://platform.example/@{username}")),
        fields: Vec::new(),
        language: Some("en".into()),
        is_public: true,
        is_adult: eligible,
        is_suspended: false,
        account_created_at: Some(0),
    }
}

/// A public post.
pub fn post_input(post_id: &str) -> posts::PostInput {
    posts::PostInput {
        platform_post_id: post_id.to_owned(),
        text: format!("Post {post_id}"),
        visibility: posts::Visibility::Public,
        age_restricted: false,
        reply_to_platform_post_id: None,
        reply_to_url: None,
        quote_of_platform_post_id: None,
        quote_of_url: None,
        media: Vec::new(),
        mentions: Vec::new(),
        hashtags: Vec::new(),
        content_warning: None,
        sensitive: false,
        language: Some("en".into()),
        reply_policy: posts::InteractionPolicy::Everyone,
        quote_policy: posts::InteractionPolicy::Everyone,
        via_api: false,
        published_at: bridge::db::now_millis(),
        edited_at: None,
    }
}

/// A platform event from the adapter's example `name`, with `edit` applied to its JSON.
pub fn event(
    name: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> platform_adapter::InboundEvent {
    let path = format!(
        "{}/../platform-adapter/examples/inbound/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("example exists"))
            .expect("example JSON");
    json["id"] = serde_json::json!(format!("evt_{}", uuid::Uuid::new_v4().simple()));
    edit(&mut json);
    platform_adapter::decode_inbound(&serde_json::to_vec(&json).expect("encode"))
        .expect("valid event")
}

/// Runs `scenario` on SQLite and (when reachable) PostgreSQL.
pub async fn on_both<F, Fut>(scenario: F)
where
    F: Fn(Backend) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    scenario(Backend::Sqlite).await;
    scenario(Backend::Postgres).await;
}
