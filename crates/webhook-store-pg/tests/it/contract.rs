//! The store contract suite on a fresh database per case.

use webhook_store_pg::test_db::fresh_store;

webhook_store_contract::store_contract_tests!(fresh_store());
