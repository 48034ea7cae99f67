//! Diesel table definitions, kept by hand so that one file describes both backends.
//!
//! Ids are `BigInt` everywhere (SQLite's `INTEGER PRIMARY KEY` is 64-bit), times are UTC
//! milliseconds in `BigInt`, JSON lives in `Text`, and states are `Text` with `CHECK`s.

#![allow(missing_docs)]

diesel::table! {
    users (id) {
        id -> BigInt,
        platform_user_id -> Text,
        username -> Text,
        username_lower -> Text,
        display_name -> Nullable<Text>,
        bio -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        header_url -> Nullable<Text>,
        profile_url -> Nullable<Text>,
        profile_fields -> Text,
        language -> Nullable<Text>,
        is_public -> Bool,
        is_adult -> Bool,
        is_suspended -> Bool,
        account_created_at -> Nullable<BigInt>,
        sharing_state -> Text,
        sharing_changed_at -> Nullable<BigInt>,
        consented_at -> Nullable<BigInt>,
        opted_out_at -> Nullable<BigInt>,
        cooldown_until -> Nullable<BigInt>,
        failing_gates -> Text,
        discoverable -> Bool,
        indexable -> Bool,
        manually_approves_followers -> Bool,
        moved_to -> Nullable<Text>,
        also_known_as -> Text,
        deleted_at -> Nullable<BigInt>,
        last_event_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    actor_keys (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        public_key_pem -> Text,
        private_key_pem -> Text,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    posts (id) {
        id -> BigInt,
        platform_post_id -> Text,
        user_id -> BigInt,
        text -> Text,
        visibility -> Text,
        age_restricted -> Bool,
        reply_to_platform_post_id -> Nullable<Text>,
        reply_to_url -> Nullable<Text>,
        quote_of_platform_post_id -> Nullable<Text>,
        quote_of_url -> Nullable<Text>,
        media -> Text,
        mentions -> Text,
        hashtags -> Text,
        content_warning -> Nullable<Text>,
        sensitive -> Bool,
        language -> Nullable<Text>,
        reply_policy -> Text,
        quote_policy -> Text,
        via_api -> Bool,
        pinned -> Bool,
        federation_state -> Text,
        published_at -> BigInt,
        edited_at -> Nullable<BigInt>,
        federated_at -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_event_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    remote_actors (id) {
        id -> BigInt,
        ap_id -> Text,
        host -> Text,
        kind -> Text,
        preferred_username -> Nullable<Text>,
        name -> Nullable<Text>,
        url -> Nullable<Text>,
        icon_url -> Nullable<Text>,
        inbox -> Text,
        shared_inbox -> Nullable<Text>,
        public_key_id -> Nullable<Text>,
        public_key_pem -> Nullable<Text>,
        moved_to -> Nullable<Text>,
        fetched_at -> BigInt,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    follows (id) {
        id -> BigInt,
        user_id -> BigInt,
        remote_actor_id -> BigInt,
        state -> Text,
        follow_activity_id -> Text,
        created_at -> BigInt,
        accepted_at -> Nullable<BigInt>,
        host -> Text,
    }
}

diesel::table! {
    remote_interactions (id) {
        id -> BigInt,
        ap_id -> Text,
        kind -> Text,
        remote_actor_id -> BigInt,
        post_id -> Nullable<BigInt>,
        user_id -> BigInt,
        object_ap_id -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> Nullable<BigInt>,
        undone_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    activities (id) {
        id -> BigInt,
        ap_id -> Text,
        kind -> Text,
        user_id -> Nullable<BigInt>,
        object_ap_id -> Nullable<Text>,
        priority -> Integer,
        payload -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    deliveries (id) {
        id -> BigInt,
        activity_id -> BigInt,
        inbox -> Text,
        host -> Text,
        state -> Text,
        priority -> Integer,
        attempts -> Integer,
        next_attempt_at -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        last_status -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        finished_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    remote_hosts (host) {
        host -> Text,
        consecutive_failures -> Integer,
        first_failure_at -> Nullable<BigInt>,
        last_failure_at -> Nullable<BigInt>,
        last_success_at -> Nullable<BigInt>,
        blocked_until -> Nullable<BigInt>,
        unavailable -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    object_ledger (id) {
        id -> BigInt,
        user_id -> BigInt,
        object_ap_id -> Text,
        host -> Text,
        inbox -> Nullable<Text>,
        via -> Text,
        first_seen_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    removals (id) {
        id -> BigInt,
        user_id -> BigInt,
        started_at -> BigInt,
        completed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    inbound_activities (ap_id) {
        ap_id -> Text,
        actor_ap_id -> Text,
        kind -> Text,
        received_at -> BigInt,
    }
}

diesel::table! {
    processed_events (event_id) {
        event_id -> Text,
        event_type -> Text,
        processed_at -> BigInt,
    }
}

diesel::table! {
    platform_outbox (id) {
        id -> BigInt,
        message_id -> Text,
        order_key -> Text,
        message_type -> Text,
        payload -> Text,
        created_at -> BigInt,
        published_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    instance_blocks (domain) {
        domain -> Text,
        severity -> Text,
        reason -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    user_blocks (id) {
        id -> BigInt,
        user_id -> BigInt,
        target_kind -> Text,
        target -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        user_id -> Nullable<BigInt>,
        action -> Text,
        initiator -> Text,
        detail -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    platform_reports (id) {
        id -> BigInt,
        report_id -> Text,
        reporter_user_id -> Text,
        target_actor -> Text,
        object_urls -> Text,
        comment -> Text,
        state -> Text,
        flag_ap_id -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::joinable!(actor_keys -> users (user_id));
diesel::joinable!(posts -> users (user_id));
diesel::joinable!(follows -> users (user_id));
diesel::joinable!(follows -> remote_actors (remote_actor_id));
diesel::joinable!(remote_interactions -> remote_actors (remote_actor_id));
diesel::joinable!(deliveries -> activities (activity_id));
diesel::joinable!(object_ledger -> users (user_id));
diesel::joinable!(removals -> users (user_id));
diesel::joinable!(user_blocks -> users (user_id));
diesel::joinable!(audit_log -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    actor_keys,
    posts,
    remote_actors,
    follows,
    remote_interactions,
    activities,
    deliveries,
    remote_hosts,
    object_ledger,
    removals,
    inbound_activities,
    processed_events,
    platform_outbox,
    instance_blocks,
    user_blocks,
    audit_log,
    platform_reports,
);
