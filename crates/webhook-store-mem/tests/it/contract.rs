//! The store contract suite against [`MemoryStore`], each case on a new, empty store.

use webhook_store_mem::MemoryStore;

webhook_store_contract::store_contract_tests!(std::future::ready(MemoryStore::new()));
