use openraft::errors::ErrorSource;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use tempfile::TempDir;

use crate::TypeConfig;

use crate::{LogStore, StateMachine};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), openraft::StorageError<TypeConfig>> {
        let dir = TempDir::new().map_err(|e| openraft::StorageError::read(ErrorSource::from_error(&e)))?;
        let (log, sm, _) =
            crate::open(dir.path()).map_err(|e| openraft::StorageError::read(ErrorSource::from_error(&e)))?;
        Ok((dir, log, sm))
    }
}

/// openraft's own storage conformance suite, against the RocksDB log and state machine.
#[test]
fn passes_openraft_storage_suite() {
    TypeConfig::run(async {
        Suite::test_all(Builder).await.unwrap();
    });
}
