//! The diesel table definitions of `migrations/postgres`.

diesel::table! {
    organizations (id) {
        id -> Uuid,
        name -> Text,
        rate_limit_per_minute -> Integer,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        role -> Text,
        hash -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    targets (id) {
        id -> Uuid,
        organization_id -> Uuid,
        kind -> Text,
        name -> Text,
        endpoint_url -> Nullable<Text>,
        signing_secret -> Bytea,
        deleted -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        target_id -> Uuid,
        event_types -> Array<Text>,
        secret -> Nullable<Bytea>,
        rate_limit_per_minute -> Integer,
        status -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_triggered_at -> Nullable<Timestamptz>,
        source -> Text,
        verification -> Nullable<Jsonb>,
        event_type_from -> Nullable<Text>,
        dedup_key_from -> Nullable<Text>,
        instruction_template -> Nullable<Text>,
        allowed_source_ips -> Array<Text>,
        previous_secret -> Nullable<Bytea>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
    }
}

// `invocations` also holds five columns this release neither reads nor writes,
// `response_status_code`, `response_body_excerpt`, `response_latency_ms`, `response_error` and
// `response_at`: the target's response is read from the latest attempt of the invocation's task,
// and only `response_succeeded` is kept on the row (see `attempt`). Nodes of the release before
// still write and read them during a rolling upgrade; a later migration drops them.
diesel::table! {
    invocations (id) {
        id -> Uuid,
        organization_id -> Uuid,
        webhook_id -> Uuid,
        received_at -> Timestamptz,
        source_ip -> Nullable<Text>,
        event_type -> Nullable<Text>,
        payload -> Nullable<Text>,
        outcome -> Text,
        http_status -> Integer,
        error_code -> Nullable<Text>,
        task_id -> Nullable<Uuid>,
        repeat_count -> Integer,
        test -> Bool,
        response_succeeded -> Nullable<Bool>,
        delivery_id -> Nullable<Text>,
        duplicate_of -> Nullable<Uuid>,
        instruction_fallback -> Nullable<Text>,
        request_record -> Nullable<Text>,
        replay_of -> Nullable<Uuid>,
    }
}

diesel::table! {
    tasks (id) {
        id -> Uuid,
        organization_id -> Uuid,
        target_id -> Uuid,
        webhook_id -> Uuid,
        invocation_id -> Uuid,
        instruction -> Nullable<Text>,
        context -> Nullable<Text>,
        event_type -> Nullable<Text>,
        status -> Text,
        test -> Bool,
        source_verified -> Bool,
        source_ip -> Nullable<Text>,
        source_received_at -> Timestamptz,
        attempts -> Integer,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        lease_token -> Nullable<Uuid>,
        lease_until -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        attempts_before_round -> Integer,
        source_provider -> Text,
    }
}

diesel::table! {
    delivery_attempts (task_id, number) {
        task_id -> Uuid,
        number -> Integer,
        status_code -> Nullable<Integer>,
        body_excerpt -> Nullable<Text>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
        at -> Timestamptz,
        succeeded -> Bool,
    }
}

diesel::table! {
    delivery_claims (webhook_id, delivery_id) {
        webhook_id -> Uuid,
        delivery_id -> Text,
        invocation_id -> Uuid,
        task_id -> Nullable<Uuid>,
        claimed_at -> Timestamptz,
    }
}

diesel::table! {
    master_key_check (id) {
        id -> SmallInt,
        sealed -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(api_keys -> organizations (organization_id));
diesel::joinable!(targets -> organizations (organization_id));
diesel::joinable!(webhooks -> targets (target_id));
diesel::joinable!(invocations -> webhooks (webhook_id));
diesel::joinable!(tasks -> invocations (invocation_id));
diesel::joinable!(tasks -> targets (target_id));
diesel::joinable!(delivery_attempts -> tasks (task_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    api_keys,
    targets,
    webhooks,
    invocations,
    tasks,
    delivery_attempts,
    delivery_claims,
    master_key_check,
);
