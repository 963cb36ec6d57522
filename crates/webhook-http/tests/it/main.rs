//! Integration tests of the HTTP adapter: the real app on a loopback port, a real HTTP client.

mod api;
mod cases;
mod helpers;
mod streaming;

mod memory {
    crate::cases::backend_cases!(async { webhook_store_mem::MemoryStore::new() });
}
