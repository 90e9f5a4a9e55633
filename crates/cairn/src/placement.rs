//! Which disk holds which shard. With one node, every chunk's `data + parity` shards go to
//! `data + parity` distinct disks, rotated by the chunk id so that data and parity load spread
//! evenly. The consistent-hash ring of later issues replaces this for many nodes.

use cairn_types::ChunkId;

/// The disk holding shard `index` of `chunk`, among `disks` disks.
pub(crate) fn disk_for(chunk: &ChunkId, index: usize, disks: usize) -> usize {
    ((chunk.spread() % disks as u64) as usize + index) % disks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_of_a_chunk_land_on_distinct_disks() {
        for n in 0u8..50 {
            let id = ChunkId([n.wrapping_mul(37); 32]);
            let mut seen: Vec<usize> = (0..6).map(|i| disk_for(&id, i, 6)).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 6);
        }
    }
}
