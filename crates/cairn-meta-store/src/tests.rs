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

mod snapshots {
    use std::path::Path;

    use openraft::alias::SnapshotMetaOf;
    use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
    use rocksdb::IteratorMode;

    use crate::db::{CF_SM_META, CF_STATE};
    use crate::state_machine::KEY_APPLIED;
    use crate::{MetaDb, StateMachine, TypeConfig};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Opens a store in `dir`, fills its state with `n` records and marks them applied at
    /// log index `index`.
    fn filled(dir: &Path, n: usize, index: u64, tag: &str) -> (StateMachine, MetaDb) {
        let (_, sm, reader) = crate::open(dir).unwrap();
        let db = reader.db.clone();
        let state = db.cf_handle(CF_STATE).unwrap();
        for i in 0..n {
            db.put_cf(&state, format!("O{i:08}"), format!("{tag}-{i}").repeat(20))
                .unwrap();
        }
        let meta = db.cf_handle(CF_SM_META).unwrap();
        let applied = (
            Some(openraft::testing::log_id::<TypeConfig>(1, 1, index)),
            openraft::alias::StoredMembershipOf::<TypeConfig>::default(),
        );
        db.put_cf(&meta, KEY_APPLIED, cairn_meta::encode(&applied)).unwrap();
        drop((sm, reader, db));
        let (_, sm, reader) = crate::open(dir).unwrap();
        (sm, reader.db)
    }

    fn state_of(db: &MetaDb) -> cairn_meta::KvPairs {
        let cf = db.cf_handle(CF_STATE).unwrap();
        db.iterator_cf(&cf, IteratorMode::Start)
            .map(Result::unwrap)
            .map(|(k, v)| (k.into_vec(), v.into_vec()))
            .collect()
    }

    fn snapshot_files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir.join(crate::SNAPSHOT_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_snapshot_file_replaces_another_members_state_exactly() {
        rt().block_on(async {
            let a = tempfile::tempdir().unwrap();
            let b = tempfile::tempdir().unwrap();
            let (mut sm_a, db_a) = filled(a.path(), 5_000, 100, "a");
            let (mut sm_b, db_b) = filled(b.path(), 7_000, 10, "b");
            let built = sm_a.get_snapshot_builder().await.build_snapshot().await.unwrap();
            assert_eq!(built.snapshot.verify().unwrap(), 5_000);
            let current = sm_a.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(current.meta, built.meta);

            sm_b.install_snapshot(&built.meta, built.snapshot).await.unwrap();
            assert_eq!(state_of(&db_b), state_of(&db_a));
            assert_eq!(sm_b.applied_state().await.unwrap().0, built.meta.last_log_id);
            let installed = sm_b.get_current_snapshot().await.unwrap().unwrap();
            assert_eq!(installed.meta, built.meta);
            assert_eq!(snapshot_files(b.path()).len(), 1, "one snapshot file kept");

            // A second build replaces the first file.
            sm_a.get_snapshot_builder().await.build_snapshot().await.unwrap();
            assert_eq!(snapshot_files(a.path()).len(), 1);

            // A build of an older state than the current snapshot (here: b's own state, older
            // than what it installed — as when a build races an install) keeps the newer one
            // and answers it.
            let stale = crate::MetaDb::clone(&db_b);
            let sm_meta = stale.cf_handle(CF_SM_META).unwrap();
            let older = (
                Some(openraft::testing::log_id::<TypeConfig>(1, 1, 50)),
                openraft::alias::StoredMembershipOf::<TypeConfig>::default(),
            );
            stale.put_cf(&sm_meta, KEY_APPLIED, cairn_meta::encode(&older)).unwrap();
            let answered = sm_b.get_snapshot_builder().await.build_snapshot().await.unwrap();
            assert_eq!(answered.meta, built.meta, "the newer snapshot stays current");
            assert_eq!(sm_b.get_current_snapshot().await.unwrap().unwrap().meta, built.meta);
            assert_eq!(snapshot_files(b.path()).len(), 1);
        });
    }

    #[test]
    fn an_install_cut_by_a_crash_is_finished_on_open() {
        rt().block_on(async {
            let a = tempfile::tempdir().unwrap();
            let b = tempfile::tempdir().unwrap();
            let (mut sm_a, db_a) = filled(a.path(), 3_000, 100, "a");
            let built = sm_a.get_snapshot_builder().await.build_snapshot().await.unwrap();
            let (sm_b, db_b) = filled(b.path(), 4_000, 10, "b");
            // The crash: the snapshot is recorded as current, the state still the old one
            // (as if the batches had not reached the disk).
            let local = sm_b.snapshots.local_copy(&built.snapshot).unwrap();
            sm_b.snapshots.adopt(&local, &built.meta, true).unwrap();
            drop((sm_b, db_b));

            let (_, mut sm_b, reader) = crate::open(b.path()).unwrap();
            assert_eq!(state_of(&reader.db), state_of(&db_a));
            assert_eq!(sm_b.applied_state().await.unwrap().0, built.meta.last_log_id);
        });
    }

    #[test]
    fn a_damaged_snapshot_is_refused_before_the_state_is_touched() {
        rt().block_on(async {
            let a = tempfile::tempdir().unwrap();
            let b = tempfile::tempdir().unwrap();
            let (mut sm_a, _db_a) = filled(a.path(), 1_000, 100, "a");
            let built = sm_a.get_snapshot_builder().await.build_snapshot().await.unwrap();
            let mut bytes = std::fs::read(built.snapshot.path()).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 1;
            let damaged = b.path().join("damaged");
            std::fs::write(&damaged, &bytes).unwrap();
            let (mut sm_b, db_b) = filled(&b.path().join("db"), 500, 10, "b");
            let before = state_of(&db_b);
            let file = crate::SnapshotFile::open(&damaged).unwrap();
            let meta: SnapshotMetaOf<TypeConfig> = built.meta.clone();
            assert!(sm_b.install_snapshot(&meta, file).await.is_err());
            assert_eq!(state_of(&db_b), before);
            assert!(sm_b.get_current_snapshot().await.unwrap().is_none());
        });
    }
}
