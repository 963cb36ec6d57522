//! The store contract suite: one test case per obligation (each MUST) of the store ports in
//! `webhook_domain::ports`, run against every store adapter.
//!
//! The orphan rule forbids implementing [`ContractStore`] (foreign) for an adapter's store type
//! (foreign too) inside the adapter's integration tests, so the adapter implements it in its own
//! library behind a `test-util` feature, and enables that feature for its tests with a
//! dev-dependency on itself:
//!
//! ```toml
//! [features]
//! test-util = ["dep:webhook-store-contract"]
//!
//! [dependencies]
//! webhook-store-contract = { workspace = true, optional = true }
//!
//! [dev-dependencies]
//! my-store = { path = ".", features = ["test-util"] }
//! tokio.workspace = true  # with the macros and rt-multi-thread features
//! webhook-store-contract.workspace = true
//! ```
//!
//! ```text
//! // src/lib.rs
//! #[cfg(feature = "test-util")]
//! impl webhook_store_contract::ContractStore for MyStore {
//!     async fn teardown(self) { /* drop the test database */ }
//! }
//!
//! // tests/it/contract.rs
//! async fn fresh_store() -> MyStore { /* a new, empty, migrated store */ }
//! webhook_store_contract::store_contract_tests!(fresh_store());
//! ```
//!
//! The macro generates one `#[tokio::test(flavor = "multi_thread")]` per case, named as the
//! case, so the crate that uses it needs `tokio` with the `macros` and `rt-multi-thread`
//! features among its dev-dependencies. `$new_store` is evaluated once per test.
//!
//! The case names are listed once, in [`for_each_case!`]; a unit test checks that the list and
//! the `pub async fn`s of [`cases`] agree.

#![expect(
    clippy::missing_panics_doc,
    reason = "test support: a panic is how a contract case fails"
)]

use std::future::Future;

pub mod bench;
pub mod cases;
pub mod fixtures;
pub mod health_bench;
pub mod search_bench;

/// A store under contract test.
pub trait ContractStore: webhook_domain::ports::Store + Clone + Send + Sync + 'static {
    /// Runs after a case that passed: drop a database, remove a file, ….
    fn teardown(self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Makes the next `record_invocation` lose its connection to the database at `fault`, as
    /// a network cut or a server crash would, while the database itself stays reachable.
    /// Returns `false` (the default) for a store that has no connection to lose, such as an
    /// embedded or in-memory one, whose commit always reports its own outcome.
    fn break_next_commit(&self, fault: CommitFault) -> bool {
        let _ = fault;
        false
    }
}

/// Where [`ContractStore::break_next_commit`] breaks a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitFault {
    /// The connection breaks before the write reaches the database: nothing is written.
    BeforeCommit,
    /// The database commits, and the connection breaks before its answer arrives.
    AfterCommit,
}

/// Calls `$callback!` with `$args` followed by the name of every contract case, separated by
/// commas. The one list of case names: [`store_contract_tests!`] builds its tests from it.
#[macro_export]
macro_rules! for_each_case {
    ($($callback:ident)::+; $($args:tt)*) => {
        $($callback)::+! { $($args)*;
            organizations_round_trip,
            missing_organization_is_not_found,
            insert_organization_twice_conflicts,
            api_key_by_hash,
            insert_api_key_conflicts_on_id_or_hash,
            api_keys_are_listed_oldest_first,
            delete_api_key_of_another_organization_is_not_found,
            organizations_are_listed_oldest_first,
            organization_with_key_is_created_together,
            organization_with_key_conflicts_and_writes_nothing,
            first_organization_is_created_once,
            target_round_trip_and_update,
            insert_target_twice_conflicts,
            target_of_another_organization_is_not_found,
            targets_are_paged_newest_first,
            delete_target_hides_it_and_keeps_its_tasks,
            delete_target_with_live_webhook_conflicts,
            webhook_round_trip_and_update,
            insert_webhook_twice_conflicts,
            insert_webhook_without_its_target_is_not_found,
            webhook_tombstone_is_found_and_never_reused,
            update_webhook_of_another_organization_is_not_found,
            webhooks_are_paged_newest_first,
            webhooks_filter_by_status,
            webhook_health_counts_the_window_as_the_log_filters_it,
            webhook_health_answers_each_id_in_order,
            record_invocation_round_trips,
            record_invocation_twice_conflicts,
            record_invocation_is_all_or_nothing,
            record_invocation_with_a_lost_commit_answers_what_is_stored,
            invocation_for_another_organizations_webhook_is_not_found,
            accepted_invocation_sets_last_triggered_at,
            invocation_of_another_organization_is_not_found,
            invocations_are_paged_newest_first,
            invocation_pages_are_stable_under_concurrent_inserts,
            invocations_filter_by_outcome,
            invocations_filter_failed,
            invocations_filter_by_event_type,
            invocations_filter_by_source_ip,
            invocations_filter_by_time,
            invocations_filter_by_test,
            search_keeps_payloads_with_every_word,
            search_words_are_the_domains,
            search_pages_combine_with_filters,
            search_forgets_purged_invocations,
            invocation_summaries_carry_prefixes_not_payloads,
            invocation_summaries_say_where_delivery_stands,
            task_summaries_are_the_tasks_without_context,
            purge_removes_old_finished_invocations_only,
            last_triggered_at_outlives_the_purge,
            check_writable_leaves_nothing_visible,
            tasks_are_paged_newest_first_and_filtered,
            task_of_another_organization_is_not_found,
            set_task_status_is_compare_and_set,
            set_task_status_persists_the_change_as_given,
            set_task_status_round_after_another_round_conflicts,
            retry_requeues_failed_task,
            retry_starts_a_new_round_and_numbering_goes_on,
            finished_attempt_is_taken_as_given,
            claim_returns_due_tasks_oldest_first,
            claim_skips_targets_without_endpoint,
            claim_passes_over_skipped_targets,
            claim_from_floors_reaches_every_task_from_them,
            two_claimers_never_get_the_same_task,
            expired_lease_is_claimable_again,
            finish_attempt_records_attempt_and_target_response,
            finish_attempt_retries_then_fails,
            finish_attempt_with_lost_lease_conflicts_and_records_nothing,
            finish_attempts_answer_each_attempt,
            finish_attempts_take_repeated_tasks_in_order,
            release_lease_gives_the_task_back,
            queue_stats_count_tasks_waiting_for_delivery,
            webhook_source_settings_round_trip,
            source_fields_of_invocations_and_tasks_round_trip,
            invocations_filter_duplicates,
            a_claimed_delivery_id_answers_the_first_claim,
            delivery_ids_are_claimed_per_webhook,
            a_lapsed_claim_is_taken_over,
            concurrent_claims_record_exactly_one,
            purge_delivery_claims_removes_lapsed_claims,
            request_records_round_trip,
            request_records_ride_in_claimed_writes,
            the_first_key_check_is_kept,
            concurrent_first_key_checks_keep_one,
        }
    };
}

/// Generates one `#[tokio::test]` per contract case. `$new_store` is an expression evaluated
/// once per test that yields a future of a fresh, empty, migrated store implementing
/// [`ContractStore`].
#[macro_export]
macro_rules! store_contract_tests {
    ($new_store:expr) => {
        $crate::for_each_case!($crate::__store_contract_test_fns; $new_store);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_contract_test_fns {
    ($new_store:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $new_store.await;
                $crate::cases::$case(::std::clone::Clone::clone(&store)).await;
                $crate::ContractStore::teardown(store).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    macro_rules! names {
        ($unused:tt; $($case:ident),* $(,)?) => {
            &[$(stringify!($case)),*]
        };
    }

    /// Every `pub async fn` under `src/cases/` is listed in [`for_each_case!`], and nothing else.
    #[test]
    fn the_case_list_matches_the_case_functions() {
        let listed: &[&str] = crate::for_each_case!(names; ());
        let mut listed: Vec<&str> = listed.to_vec();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cases");
        let mut defined = Vec::new();
        for entry in std::fs::read_dir(dir).expect("src/cases is readable") {
            let text = std::fs::read_to_string(entry.expect("directory entry").path())
                .expect("case file is readable");
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    let name = rest.split(['<', '(']).next().expect("a name").to_owned();
                    defined.push(name);
                }
            }
        }
        listed.sort_unstable();
        defined.sort_unstable();
        let mut unique = listed.clone();
        unique.dedup();
        assert_eq!(listed, unique, "a case is listed twice");
        assert_eq!(listed, defined, "for_each_case! and src/cases disagree");
    }
}
