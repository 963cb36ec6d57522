//! Integration tests of the HTTP adapter: the real app on a loopback port, a real HTTP client.

mod api;
mod cases;
mod cluster;
mod conformance;
mod fuzz;
mod head;
mod health;
mod helpers;
mod lists;
mod openapi;
mod records;
mod sources;
mod streaming;

mod memory {
    crate::cases::backend_cases!(
        async { webhook_store_mem::MemoryStore::new() },
        with_readiness
    );
}

mod sqlite {
    crate::cases::backend_cases!(crate::helpers::fresh_sqlite(), with_readiness);
}

mod postgres {
    crate::cases::backend_cases!(webhook_store_pg::test_db::fresh_store(), with_readiness);
}
