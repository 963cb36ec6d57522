//! Diesel's view of the tables created by `migrations/sqlite`.

diesel::table! {
    organizations (id) {
        id -> Binary,
        name -> Text,
        rate_limit_per_minute -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Binary,
        organization_id -> Binary,
        name -> Text,
        role -> Text,
        hash -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    targets (id) {
        id -> Binary,
        organization_id -> Binary,
        kind -> Text,
        name -> Text,
        endpoint_url -> Nullable<Text>,
        signing_secret -> Binary,
        created_at -> BigInt,
        updated_at -> BigInt,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Binary,
        organization_id -> Binary,
        name -> Text,
        target_id -> Binary,
        event_types -> Text,
        secret -> Nullable<Binary>,
        rate_limit_per_minute -> BigInt,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_triggered_at -> Nullable<BigInt>,
        source -> Text,
        verification -> Nullable<Text>,
        event_type_from -> Nullable<Text>,
        dedup_key_from -> Nullable<Text>,
        instruction_template -> Nullable<Text>,
        allowed_source_ips -> Nullable<Text>,
        previous_secret -> Nullable<Binary>,
        previous_secret_expires_at -> Nullable<BigInt>,
    }
}

// `invocations` also holds five columns no release reads or writes any more,
// `response_status_code`, `response_body_excerpt`, `response_latency_ms`, `response_error` and
// `response_at`: the target's response is read from the latest attempt of the invocation's task,
// and only `response_succeeded` is kept on the row (see `store::delivery_writes`). PostgreSQL
// keeps them for the nodes of the release before during a rolling upgrade, and both stores keep
// the same columns (migrations/README.md); a later migration drops them in both.
diesel::table! {
    invocations (id) {
        id -> Binary,
        organization_id -> Binary,
        webhook_id -> Binary,
        received_at -> BigInt,
        source_ip -> Nullable<Text>,
        event_type -> Nullable<Text>,
        payload -> Nullable<Text>,
        outcome -> Text,
        http_status -> BigInt,
        error_code -> Nullable<Text>,
        task_id -> Nullable<Binary>,
        repeat_count -> BigInt,
        test -> Bool,
        response_succeeded -> Nullable<Bool>,
        delivery_id -> Nullable<Text>,
        duplicate_of -> Nullable<Binary>,
        instruction_fallback -> Nullable<Text>,
        request_record -> Nullable<Text>,
        replay_of -> Nullable<Binary>,
    }
}

diesel::table! {
    tasks (id) {
        id -> Binary,
        organization_id -> Binary,
        target_id -> Binary,
        webhook_id -> Binary,
        invocation_id -> Binary,
        instruction -> Nullable<Text>,
        context -> Nullable<Text>,
        event_type -> Nullable<Text>,
        status -> Text,
        test -> Bool,
        source_verified -> Bool,
        source_ip -> Nullable<Text>,
        source_received_at -> BigInt,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        last_error -> Nullable<Text>,
        lease_token -> Nullable<Binary>,
        lease_until -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        attempts_before_round -> BigInt,
        source_provider -> Text,
    }
}

diesel::table! {
    delivery_attempts (task_id, number) {
        task_id -> Binary,
        number -> BigInt,
        status_code -> Nullable<BigInt>,
        body_excerpt -> Nullable<Text>,
        latency_ms -> BigInt,
        error -> Nullable<Text>,
        at -> BigInt,
        succeeded -> Bool,
    }
}

diesel::table! {
    delivery_claims (webhook_id, delivery_id) {
        webhook_id -> Binary,
        delivery_id -> Text,
        invocation_id -> Binary,
        task_id -> Nullable<Binary>,
        claimed_at -> BigInt,
    }
}

diesel::table! {
    master_key_check (id) {
        id -> BigInt,
        sealed -> Binary,
        created_at -> BigInt,
    }
}

diesel::joinable!(tasks -> invocations (invocation_id));
diesel::joinable!(tasks -> targets (target_id));

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
