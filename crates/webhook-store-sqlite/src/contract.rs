//! The contract suite's hook: a passed case closes the store and removes its files.

use webhook_store_contract::ContractStore;

use crate::SqliteStore;

impl ContractStore for SqliteStore {
    async fn teardown(self) {
        self.close().await;
        let path = self.path().to_owned();
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            // Already gone or never created: nothing to clean.
            let _ = std::fs::remove_file(file);
        }
    }
}
