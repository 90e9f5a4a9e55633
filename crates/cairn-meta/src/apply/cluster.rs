//! The cluster map and where chunks' shards are: epochs of the map made by storage nodes'
//! reports and by draining, chunk placements, and the repair queue.

use cairn_types::ChunkId;

use crate::codec::encode;
use crate::command::{MetaError, Response};
use crate::keys;
use crate::kv::KvWrite;
use crate::records::{ChunkPlacement, ChunkRecord, ClusterMapRecord, MapNode, StorageNodeRecord};

use super::{read, Result};

/// The current cluster map (epoch 0 and no nodes before the first report).
pub(super) fn current_map(kv: &impl KvWrite) -> Result<ClusterMapRecord> {
    let Some(epoch) = read::<u64>(kv, &keys::map_epoch_key())? else {
        return Ok(ClusterMapRecord::default());
    };
    read::<ClusterMapRecord>(kv, &keys::map_key(epoch))?
        .ok_or_else(|| MetaError::CorruptRecord(format!("cluster map of epoch {epoch} is missing")))
}

/// Stores `map` as the next epoch after the current one.
fn next_epoch(kv: &mut impl KvWrite, mut map: ClusterMapRecord) {
    map.epoch += 1;
    map.nodes.sort_by(|a, b| a.id.cmp(&b.id));
    kv.put(keys::map_key(map.epoch), encode(&map));
    kv.put(keys::map_epoch_key(), encode(&map.epoch));
}

/// A node reported itself: a node new to the map, or one whose zone or disks changed, makes a
/// new epoch (a draining node stays draining); a heartbeat that changes neither does not.
pub(super) fn reported(kv: &mut impl KvWrite, node: &StorageNodeRecord) -> Result<()> {
    let mut map = current_map(kv)?;
    let mut wanted = MapNode::from_report(node);
    match map.nodes.iter_mut().find(|n| n.id == node.id) {
        Some(known) => {
            wanted.draining = known.draining;
            if *known == wanted {
                return Ok(());
            }
            *known = wanted;
        }
        None => map.nodes.push(wanted),
    }
    next_epoch(kv, map);
    Ok(())
}

/// Sets a node's draining flag.
pub(super) fn drain(kv: &mut impl KvWrite, id: &str, drain: bool) -> Result<Response> {
    let mut map = current_map(kv)?;
    let node = map
        .nodes
        .iter_mut()
        .find(|n| n.id == id)
        .ok_or(MetaError::NoSuchStorageNode)?;
    if node.draining != drain {
        node.draining = drain;
        next_epoch(kv, map);
    }
    Ok(Response::Done)
}

/// Sets where a chunk's shards are: the default placement is not stored, and a chunk is in
/// the repair queue exactly while shards of it are missing or away from home.
pub(super) fn set_placement(kv: &mut impl KvWrite, id: &ChunkId, placement: ChunkPlacement) {
    if placement == ChunkPlacement::default() {
        kv.delete(keys::placement_key(id));
    } else {
        kv.put(keys::placement_key(id), encode(&placement));
    }
    if placement.is_whole() {
        kv.delete(keys::repair_key(id));
    } else {
        kv.put(keys::repair_key(id), encode(&()));
    }
}

/// Shards of a chunk restored or found lost.
pub(super) fn shards_changed(
    kv: &mut impl KvWrite,
    id: &ChunkId,
    epoch: u64,
    restored: u32,
    lost: u32,
) -> Result<Response> {
    let Some(record) = read::<ChunkRecord>(kv, &keys::chunk_key(id))? else {
        return Ok(Response::Done);
    };
    let mut placement = read::<ChunkPlacement>(kv, &keys::placement_key(id))?.unwrap_or_default();
    if placement.epoch != epoch {
        return Ok(Response::Done);
    }
    let all = if record.scheme.total() >= 32 {
        u32::MAX
    } else {
        (1u32 << record.scheme.total()) - 1
    };
    let missing = ((placement.missing & !restored) | lost) & all;
    // A report that every shard is lost cannot be acted on (nothing to rebuild from) and is
    // more likely a reader cut off from the disks: keep what is known.
    if missing != all {
        placement.missing = missing;
        placement
            .moved
            .retain(|(i, _)| (restored | lost) & (1u32 << (u32::from(*i) & 31)) == 0);
        set_placement(kv, id, placement);
    }
    Ok(Response::Done)
}
