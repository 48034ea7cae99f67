-- fedibridge schema, SQLite flavour. The PostgreSQL twin in ../../postgres has the same tables,
-- columns and indexes. Times are UTC milliseconds since the epoch (BIGINT) so that both
-- backends compare and sort them the same way.

-- Platform users known to the bridge, with their eligibility facts and sharing state.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform_user_id TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    username_lower TEXT NOT NULL UNIQUE,
    display_name TEXT,
    bio TEXT,
    avatar_url TEXT,
    header_url TEXT,
    profile_url TEXT,
    profile_fields TEXT NOT NULL DEFAULT '[]',
    language TEXT,
    is_public BOOLEAN NOT NULL DEFAULT 0,
    is_adult BOOLEAN NOT NULL DEFAULT 0,
    is_suspended BOOLEAN NOT NULL DEFAULT 0,
    account_created_at BIGINT,
    sharing_state TEXT NOT NULL DEFAULT 'off' CHECK (sharing_state IN ('off', 'on', 'paused')),
    sharing_changed_at BIGINT,
    consented_at BIGINT,
    opted_out_at BIGINT,
    cooldown_until BIGINT,
    failing_gates TEXT NOT NULL DEFAULT '[]',
    discoverable BOOLEAN NOT NULL DEFAULT 1,
    indexable BOOLEAN NOT NULL DEFAULT 0,
    manually_approves_followers BOOLEAN NOT NULL DEFAULT 0,
    moved_to TEXT,
    also_known_as TEXT NOT NULL DEFAULT '[]',
    deleted_at BIGINT,
    last_event_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- RSA key pairs of local actors; user_id NULL is the instance actor.
CREATE TABLE actor_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    public_key_pem TEXT NOT NULL,
    private_key_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE INDEX actor_keys_user ON actor_keys (user_id);

-- Platform posts of known users and where each stands with the fediverse.
CREATE TABLE posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform_post_id TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text TEXT NOT NULL DEFAULT '',
    visibility TEXT NOT NULL,
    age_restricted BOOLEAN NOT NULL DEFAULT 0,
    reply_to_platform_post_id TEXT,
    reply_to_url TEXT,
    quote_of_platform_post_id TEXT,
    quote_of_url TEXT,
    media TEXT NOT NULL DEFAULT '[]',
    mentions TEXT NOT NULL DEFAULT '[]',
    hashtags TEXT NOT NULL DEFAULT '[]',
    content_warning TEXT,
    sensitive BOOLEAN NOT NULL DEFAULT 0,
    language TEXT,
    reply_policy TEXT NOT NULL DEFAULT 'everyone',
    quote_policy TEXT NOT NULL DEFAULT 'everyone',
    via_api BOOLEAN NOT NULL DEFAULT 0,
    pinned BOOLEAN NOT NULL DEFAULT 0,
    federation_state TEXT NOT NULL DEFAULT 'never'
        CHECK (federation_state IN ('never', 'federated', 'excluded', 'retracted', 'deleted')),
    published_at BIGINT NOT NULL,
    edited_at BIGINT,
    federated_at BIGINT,
    deleted_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX posts_user_published ON posts (user_id, published_at);

-- Remote ActivityPub actors we have fetched or heard from.
CREATE TABLE remote_actors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ap_id TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'Person',
    preferred_username TEXT,
    name TEXT,
    url TEXT,
    icon_url TEXT,
    inbox TEXT NOT NULL,
    shared_inbox TEXT,
    public_key_id TEXT,
    public_key_pem TEXT,
    moved_to TEXT,
    fetched_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX remote_actors_key ON remote_actors (public_key_id);
CREATE INDEX remote_actors_host ON remote_actors (host);

-- Remote actors following local users.
CREATE TABLE follows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    remote_actor_id BIGINT NOT NULL REFERENCES remote_actors (id) ON DELETE CASCADE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'accepted')),
    follow_activity_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    accepted_at BIGINT,
    UNIQUE (user_id, remote_actor_id)
);
CREATE INDEX follows_remote ON follows (remote_actor_id);

-- Likes, boosts, replies, quotes and mentions received from the fediverse.
CREATE TABLE remote_interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ap_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('like', 'boost', 'reply', 'quote', 'mention')),
    remote_actor_id BIGINT NOT NULL REFERENCES remote_actors (id) ON DELETE CASCADE,
    post_id BIGINT REFERENCES posts (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    object_ap_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    undone_at BIGINT
);
CREATE INDEX remote_interactions_post ON remote_interactions (post_id);

-- Outbound activities, stored once and fanned out through deliveries.
CREATE TABLE activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ap_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    object_ap_id TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX activities_object ON activities (object_ap_id);

-- One row per (activity, inbox): the delivery queue and, once done, the ledger.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    activity_id BIGINT NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    inbox TEXT NOT NULL,
    host TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'delivered', 'failed', 'expired', 'dropped')),
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_status INTEGER,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    UNIQUE (activity_id, inbox)
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_host ON deliveries (host, state);

-- Per remote host delivery health: circuit breaker, Retry-After, dead-host marking.
CREATE TABLE remote_hosts (
    host TEXT PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    first_failure_at BIGINT,
    last_failure_at BIGINT,
    last_success_at BIGINT,
    blocked_until BIGINT,
    unavailable BOOLEAN NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- Every server that received or fetched a local object: who must be asked to delete it.
CREATE TABLE object_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    object_ap_id TEXT NOT NULL,
    host TEXT NOT NULL,
    inbox TEXT,
    via TEXT NOT NULL CHECK (via IN ('delivered', 'fetched')),
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    UNIQUE (object_ap_id, host)
);
CREATE INDEX object_ledger_user ON object_ledger (user_id);

-- An opt-out in progress or done: the removal receipt hangs off it.
CREATE TABLE removals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    started_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX removals_user ON removals (user_id);

-- Inbound activity ids already handled (replays and duplicates are dropped).
CREATE TABLE inbound_activities (
    ap_id TEXT PRIMARY KEY,
    actor_ap_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

-- Platform events already applied (at-least-once delivery, exactly-once effect).
CREATE TABLE processed_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    processed_at BIGINT NOT NULL
);

-- Transactional outbox toward the platform, relayed with publisher confirms.
CREATE TABLE platform_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    order_key TEXT NOT NULL,
    message_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE INDEX platform_outbox_unpublished ON platform_outbox (published_at, id);

-- Instance-wide domain blocks set by the operator.
CREATE TABLE instance_blocks (
    domain TEXT PRIMARY KEY,
    severity TEXT NOT NULL CHECK (severity IN ('reject', 'follows_only')),
    reason TEXT,
    created_at BIGINT NOT NULL
);

-- Per-user blocks of a remote account or a whole domain.
CREATE TABLE user_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('actor', 'domain')),
    target TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, target_kind, target)
);

-- Who changed what, for every change to a user's sharing.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    initiator TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_user ON audit_log (user_id, created_at);
