//! The collection commands: claiming unreferenced and orphaned chunks, dropping them once their
//! shards are deleted, and forgetting what only requests in flight needed.
//!
//! A pass is `GcBegin`, any number of `GcClaim` / `GcRelease` / `GcDrop`, then `GcEnd`. Only
//! one pass is in progress at a time; a collector that restarts resumes it.

use cairn_types::ChunkId;

use crate::codec::encode;
use crate::command::{MetaError, Response};
use crate::keys::{self, prefix_end};
use crate::kv::KvWrite;
use crate::records::{ChunkRecord, GcInfo, GcMark};

use super::{read, store, Result};

/// The collection progress record (zeros before the first pass).
pub(super) fn info(kv: &impl KvWrite) -> Result<GcInfo> {
    Ok(read::<GcInfo>(kv, &keys::gc_info_key())?.unwrap_or_default())
}

fn current(kv: &impl KvWrite, pass: u64) -> Result<GcInfo> {
    let info = info(kv)?;
    if info.started == pass && info.done < pass {
        Ok(info)
    } else {
        Err(MetaError::NotCurrentPass(pass))
    }
}

pub(super) fn begin(kv: &mut impl KvWrite) -> Result<Response> {
    let mut info = info(kv)?;
    if info.done == info.started {
        info.started += 1;
        kv.put(keys::gc_info_key(), encode(&info));
    }
    Ok(Response::Pass(info.started))
}

pub(super) fn claim(kv: &mut impl KvWrite, pass: u64, ids: &[ChunkId]) -> Result<Response> {
    current(kv, pass)?;
    let mut claimed = Vec::new();
    for id in ids {
        let gk = keys::gc_key(id);
        let mark = read::<GcMark>(kv, &gk)?;
        let prev_gone = match (read::<ChunkRecord>(kv, &keys::chunk_key(id))?, mark) {
            (_, Some(GcMark::Deleting { pass: p, .. })) => {
                if p == pass {
                    claimed.push(*id);
                }
                continue;
            }
            // Referenced (again): not garbage.
            (Some(r), _) if r.refcount > 0 => continue,
            (Some(_), _) => None,
            // An orphan: shards with no record.
            (None, Some(GcMark::Gone { pass })) => Some(pass),
            (None, _) => None,
        };
        kv.put(gk, encode(&GcMark::Deleting { pass, prev_gone }));
        claimed.push(*id);
    }
    Ok(Response::Chunks(claimed))
}

pub(super) fn release(kv: &mut impl KvWrite, pass: u64, ids: &[ChunkId]) -> Result<Response> {
    current(kv, pass)?;
    for id in ids {
        let gk = keys::gc_key(id);
        let Some(GcMark::Deleting { pass: p, prev_gone }) = read::<GcMark>(kv, &gk)? else {
            continue;
        };
        if p != pass {
            continue;
        }
        match (kv.get(&keys::chunk_key(id)).map_err(store)?, prev_gone) {
            (Some(_), _) => kv.put(gk, encode(&GcMark::Unreferenced)),
            (None, Some(pass)) => kv.put(gk, encode(&GcMark::Gone { pass })),
            (None, None) => kv.delete(gk),
        }
    }
    Ok(Response::Done)
}

pub(super) fn drop_claimed(kv: &mut impl KvWrite, pass: u64, ids: &[ChunkId]) -> Result<Response> {
    current(kv, pass)?;
    for id in ids {
        let gk = keys::gc_key(id);
        if matches!(read::<GcMark>(kv, &gk)?, Some(GcMark::Deleting { pass: p, .. }) if p == pass) {
            kv.delete(keys::chunk_key(id));
            super::cluster::set_placement(kv, id, Default::default());
            kv.put(gk, encode(&GcMark::Gone { pass }));
        }
    }
    Ok(Response::Done)
}

pub(super) fn end(kv: &mut impl KvWrite, pass: u64) -> Result<Response> {
    let mut info = current(kv, pass)?;
    info.done = pass;
    kv.put(keys::gc_info_key(), encode(&info));
    Ok(Response::Done)
}

pub(super) fn purge(kv: &mut impl KvWrite, through: u64, ids: &[ChunkId]) -> Result<Response> {
    let mut info = info(kv)?;
    if through > info.done {
        return Err(MetaError::NotCurrentPass(through));
    }
    // The fence moves first: a writer that began before these passes can no longer rely on
    // the absence of a mark.
    if through > info.purged_through {
        info.purged_through = through;
        kv.put(keys::gc_info_key(), encode(&info));
    }
    for id in ids {
        let gk = keys::gc_key(id);
        if matches!(read::<GcMark>(kv, &gk)?, Some(GcMark::Gone { pass }) if pass <= through) {
            kv.delete(gk);
        }
    }
    Ok(Response::Done)
}

pub(super) fn forget(kv: &mut impl KvWrite, retired: &[String], completed: &[String]) -> Result<Response> {
    for version in retired {
        let rk = keys::retired_key(version);
        if kv.get(&rk).map_err(store)?.is_none() {
            continue;
        }
        for prefix in [keys::manifest_prefix(version), keys::extent_prefix(version)] {
            for (k, _) in kv.scan(&prefix, &prefix_end(&prefix), usize::MAX).map_err(store)? {
                kv.delete(k);
            }
        }
        kv.delete(rk);
    }
    for upload in completed {
        kv.delete(keys::completed_key(upload));
    }
    Ok(Response::Done)
}
