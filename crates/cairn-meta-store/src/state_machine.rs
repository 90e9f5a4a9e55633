use std::io::{self, Cursor};

use cairn_meta::{apply, decode, encode, Command, MetaError, Overlay, Response};

use crate::TypeConfig;
use futures::{Stream, StreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StoredMembership};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::db::{MetaDb, StateReader, CF_SM_META, CF_STATE};
use crate::{blocking, io_err};

const KEY_APPLIED: &[u8] = b"applied";
const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// Pending state writes, in key order (`None` deletes).
type Writes = std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>;

type Applied = (Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>);

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<TypeConfig>,
    data: Vec<u8>,
}

/// The state machine: [`cairn_meta::apply`] over the `state` column family. The last-applied
/// log id and membership are written in the same batch as the state they describe.
pub struct StateMachine {
    db: MetaDb,
    applied: Applied,
}

impl StateMachine {
    pub(crate) fn load(db: MetaDb) -> io::Result<Self> {
        let cf = db.cf_handle(CF_SM_META).expect("sm_meta cf");
        let applied = match db.get_cf(&cf, KEY_APPLIED).map_err(io_err)? {
            Some(v) => decode(&v).map_err(io_err)?,
            None => (None, StoredMembership::default()),
        };
        Ok(Self { db, applied })
    }
}

/// Applies a batch of entries in memory and returns the writes and one response per entry.
fn apply_batch(
    reader: &StateReader,
    entries: &[EntryPayload<Command, u64, openraft::impls::BasicNode>],
    log_ids: &[LogIdOf<TypeConfig>],
    applied: &mut Applied,
) -> io::Result<(Writes, Vec<Response>)> {
    let mut batch = Overlay::new(reader);
    let mut responses = Vec::with_capacity(entries.len());
    for (payload, log_id) in entries.iter().zip(log_ids) {
        applied.0 = Some(*log_id);
        let resp = match payload {
            EntryPayload::Blank => Response::Done,
            EntryPayload::Membership(m) => {
                applied.1 = StoredMembership::new(Some(*log_id), m.clone());
                Response::Done
            }
            EntryPayload::Normal(cmd) => {
                let mut one = Overlay::new(&batch);
                match apply(&mut one, cmd) {
                    Ok(r) => {
                        let w = one.into_writes();
                        batch.merge(w);
                        r
                    }
                    // A store failure is not the command's fault and not deterministic: stop
                    // rather than answer differently from another replica.
                    Err(MetaError::Store(e)) => return Err(io_err(e)),
                    Err(e) => Response::Failed(e),
                }
            }
        };
        responses.push(resp);
    }
    Ok((batch.into_writes(), responses))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<Applied> {
        Ok(self.applied.clone())
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut payloads = Vec::new();
        let mut log_ids = Vec::new();
        let mut responders = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            log_ids.push(entry.log_id());
            payloads.push(entry.payload);
            responders.push(responder);
        }
        if payloads.is_empty() {
            return Ok(());
        }
        let db = self.db.clone();
        let mut applied = self.applied.clone();
        let (applied, responses) = blocking(move || {
            let reader = StateReader { db: db.clone() };
            let (writes, responses) = apply_batch(&reader, &payloads, &log_ids, &mut applied)?;
            let state = db.cf_handle(CF_STATE).expect("state cf");
            let meta = db.cf_handle(CF_SM_META).expect("sm_meta cf");
            let mut b = WriteBatch::default();
            for (k, v) in writes {
                match v {
                    Some(v) => b.put_cf(&state, k, v),
                    None => b.delete_cf(&state, k),
                }
            }
            b.put_cf(&meta, KEY_APPLIED, encode(&applied));
            // Not synced on its own: the log entries are, and a lost batch is replayed.
            db.write_opt(b, &WriteOptions::default()).map_err(io_err)?;
            Ok((applied, responses))
        })
        .await?;
        self.applied = applied;
        for (responder, resp) in responders.into_iter().zip(responses) {
            if let Some(r) = responder {
                r.send(resp);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { db: self.db.clone() }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> io::Result<()> {
        let data = snapshot.into_inner();
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = decode(&data).map_err(io_err)?;
        let applied: Applied = (meta.last_log_id, meta.last_membership.clone());
        let stored = encode(&StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        let applied_bytes = encode(&applied);
        let db = self.db.clone();
        blocking(move || {
            let state = db.cf_handle(CF_STATE).expect("state cf");
            let sm_meta = db.cf_handle(CF_SM_META).expect("sm_meta cf");
            let mut b = WriteBatch::default();
            b.delete_range_cf(&state, [0u8].as_slice(), [0xFFu8; 2].as_slice());
            for (k, v) in pairs {
                b.put_cf(&state, k, v);
            }
            b.put_cf(&sm_meta, KEY_APPLIED, applied_bytes);
            b.put_cf(&sm_meta, KEY_SNAPSHOT, stored);
            let mut w = WriteOptions::default();
            w.set_sync(true);
            db.write_opt(b, &w).map_err(io_err)
        })
        .await?;
        self.applied = applied;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<TypeConfig, Self::SnapshotData>>> {
        let db = self.db.clone();
        blocking(move || {
            let cf = db.cf_handle(CF_SM_META).expect("sm_meta cf");
            let Some(v) = db.get_cf(&cf, KEY_SNAPSHOT).map_err(io_err)? else {
                return Ok(None);
            };
            let s: StoredSnapshot = decode(&v).map_err(io_err)?;
            Ok(Some(openraft::storage::Snapshot {
                meta: s.meta,
                snapshot: Cursor::new(s.data),
            }))
        })
        .await
    }
}

/// Builds a snapshot from a consistent RocksDB snapshot of the state and its applied id.
pub struct SnapshotBuilder {
    db: MetaDb,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<TypeConfig, Self::SnapshotData>> {
        let db = self.db.clone();
        blocking(move || {
            let snap = db.snapshot();
            let state = db.cf_handle(CF_STATE).expect("state cf");
            let sm_meta = db.cf_handle(CF_SM_META).expect("sm_meta cf");
            let applied: Applied = match snap.get_cf(&sm_meta, KEY_APPLIED).map_err(io_err)? {
                Some(v) => decode(&v).map_err(io_err)?,
                None => (None, StoredMembership::default()),
            };
            let mut pairs = Vec::new();
            for item in snap.iterator_cf(&state, IteratorMode::Start) {
                let (k, v) = item.map_err(io_err)?;
                pairs.push((k.into_vec(), v.into_vec()));
            }
            let data = encode(&pairs);
            let meta = SnapshotMetaOf::<TypeConfig> {
                last_log_id: applied.0,
                last_membership: applied.1,
            };
            let stored = encode(&StoredSnapshot {
                meta: meta.clone(),
                data: data.clone(),
            });
            db.put_cf(&sm_meta, KEY_SNAPSHOT, stored).map_err(io_err)?;
            Ok(openraft::storage::Snapshot {
                meta,
                snapshot: Cursor::new(data),
            })
        })
        .await
    }
}
