//! Index files: the record list of a sealed segment, so that opening a store reads a few bytes
//! per record instead of every byte of every segment.
//!
//! A sealed segment never changes again (compaction writes live records elsewhere and removes
//! the whole file), so its index file is a pure function of its content and never goes stale.
//! It is a cache: it is written with temp + rename and without fsync, and one that is missing,
//! torn, fails its CRC or names another segment size is ignored and rebuilt by scanning the
//! segment.
//!
//! ```text
//! offset size field (little-endian)
//!      0    4 magic "CSX1"
//!      4    4 format version (1)
//!      8    8 segment id
//!     16    8 segment size in bytes
//!     24    4 entry count
//!     28   62 per entry: kind, shard index, chunk id (32), offset (8), length (4),
//!                        tombstone target segment (8), target offset (8)
//!    end    4 CRC32 of everything before it
//! ```

use std::io;
use std::path::{Path, PathBuf};

use cairn_types::ChunkId;

use crate::format::{KIND_SHARD, KIND_TOMBSTONE};
use crate::recover::{Entry, KIND_DAMAGED};
use crate::ShardKey;

const MAGIC: [u8; 4] = *b"CSX1";
const VERSION: u32 = 1;
const HEAD_LEN: usize = 28;
const ENTRY_LEN: usize = 62;
/// A target of (u64::MAX, u64::MAX) stands for "none".
const NO_TARGET: u64 = u64::MAX;

/// Where the index file of segment `id` lives.
pub(crate) fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.idx"))
}

fn encode(id: u64, seg_size: u64, entries: &[Entry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEAD_LEN + entries.len() * ENTRY_LEN + 4);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&seg_size.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        b.push(e.kind);
        b.push(e.key.index);
        b.extend_from_slice(e.key.chunk.as_bytes());
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.len.to_le_bytes());
        let (ts, to) = e.target.unwrap_or((NO_TARGET, NO_TARGET));
        b.extend_from_slice(&ts.to_le_bytes());
        b.extend_from_slice(&to.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn decode(b: &[u8], id: u64, seg_size: u64) -> Option<Vec<Entry>> {
    if b.len() < HEAD_LEN + 4 {
        return None;
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32_at(crc, 0) || body[0..4] != MAGIC || u32_at(body, 4) != VERSION {
        return None;
    }
    if u64_at(body, 8) != id || u64_at(body, 16) != seg_size {
        return None;
    }
    let count = u32_at(body, 24) as usize;
    if body.len() != HEAD_LEN + count.checked_mul(ENTRY_LEN)? {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for e in body[HEAD_LEN..].chunks_exact(ENTRY_LEN) {
        let kind = e[0];
        if ![KIND_SHARD, KIND_TOMBSTONE, KIND_DAMAGED].contains(&kind) {
            return None;
        }
        let mut chunk = [0u8; 32];
        chunk.copy_from_slice(&e[2..34]);
        let (ts, to) = (u64_at(e, 46), u64_at(e, 54));
        out.push(Entry {
            kind,
            key: ShardKey {
                chunk: ChunkId(chunk),
                index: e[1],
            },
            offset: u64_at(e, 34),
            len: u32_at(e, 42),
            target: (ts != NO_TARGET).then_some((ts, to)),
        });
    }
    Some(out)
}

/// Writes the index of segment `id` (of `seg_size` bytes) atomically (temp + rename).
pub(crate) fn write(dir: &Path, id: u64, seg_size: u64, entries: &[Entry]) -> io::Result<()> {
    let tmp = dir.join(format!("{id:016x}.idx.tmp"));
    std::fs::write(&tmp, encode(id, seg_size, entries))?;
    std::fs::rename(&tmp, path(dir, id))
}

/// The entries of segment `id`, if a valid index file for exactly `seg_size` bytes exists.
pub(crate) fn read(dir: &Path, id: u64, seg_size: u64) -> Option<Vec<Entry>> {
    let bytes = std::fs::read(path(dir, id)).ok()?;
    decode(&bytes, id, seg_size)
}

/// Removes the index file of segment `id`, if any.
pub(crate) fn remove(dir: &Path, id: u64) -> io::Result<()> {
    match std::fs::remove_file(path(dir, id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let entries = vec![
            Entry {
                offset: 0,
                kind: KIND_SHARD,
                key: ShardKey {
                    chunk: ChunkId([7; 32]),
                    index: 2,
                },
                len: 100,
                target: None,
            },
            Entry {
                offset: 148,
                kind: KIND_TOMBSTONE,
                key: ShardKey {
                    chunk: ChunkId([7; 32]),
                    index: 2,
                },
                len: 16,
                target: Some((3, 0)),
            },
        ];
        let b = encode(5, 212, &entries);
        assert_eq!(decode(&b, 5, 212), Some(entries));
        assert_eq!(decode(&b, 5, 213), None, "another segment size");
        assert_eq!(decode(&b, 6, 212), None, "another segment");
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x40;
            assert_eq!(decode(&bad, 5, 212), None, "flip at {i}");
        }
        assert_eq!(decode(&b[..b.len() - 1], 5, 212), None);
    }
}
