//! The record format of segment files. All integers are little-endian.
//!
//! ```text
//! offset size field
//!      0    4 magic "CSR1"
//!      4    1 format version (1)
//!      5    1 kind: 1 = shard, 2 = tombstone
//!      6    1 shard index
//!      7    1 reserved (0)
//!      8   32 chunk id (BLAKE3)
//!     40    4 payload length
//!     44    4 CRC32 (IEEE) of bytes 0..44 followed by the payload
//!     48    - payload: shard bytes, or for a tombstone the 16-byte location it cancels
//! ```
//! A tombstone names the exact (segment, offset) of the record it cancels, so tombstones can be
//! carried into newer segments by compaction without cancelling a later re-put of the same key.

use cairn_types::ChunkId;

use crate::ShardKey;

pub(crate) const MAGIC: [u8; 4] = *b"CSR1";
pub(crate) const VERSION: u8 = 1;
pub(crate) const HEADER_LEN: usize = 48;
pub(crate) const KIND_SHARD: u8 = 1;
pub(crate) const KIND_TOMBSTONE: u8 = 2;

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: u8,
    pub key: ShardKey,
    pub len: u32,
    pub crc: u32,
}

/// Why a header could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    Magic,
    Version,
    Kind,
}

pub(crate) fn encode_header(kind: u8, key: ShardKey, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4] = VERSION;
    h[5] = kind;
    h[6] = key.index;
    h[8..40].copy_from_slice(key.chunk.as_bytes());
    h[40..44].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc_of(&h[..44], payload);
    h[44..48].copy_from_slice(&crc.to_le_bytes());
    h
}

pub(crate) fn crc_of(header44: &[u8], payload: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(header44);
    c.update(payload);
    c.finalize()
}

pub(crate) fn decode_header(h: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
    if h[0..4] != MAGIC {
        return Err(HeaderError::Magic);
    }
    if h[4] != VERSION {
        return Err(HeaderError::Version);
    }
    if h[5] != KIND_SHARD && h[5] != KIND_TOMBSTONE {
        return Err(HeaderError::Kind);
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&h[8..40]);
    Ok(Header {
        kind: h[5],
        key: ShardKey {
            chunk: ChunkId(id),
            index: h[6],
        },
        len: u32::from_le_bytes(h[40..44].try_into().expect("4 bytes")),
        crc: u32::from_le_bytes(h[44..48].try_into().expect("4 bytes")),
    })
}

/// Checks a whole record (header + payload) read back from disk.
pub(crate) fn verify(h: &[u8; HEADER_LEN], payload: &[u8]) -> bool {
    let want = u32::from_le_bytes(h[44..48].try_into().expect("4 bytes"));
    crc_of(&h[..44], payload) == want
}

pub(crate) fn encode_location(segment: u64, offset: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&segment.to_le_bytes());
    b[8..].copy_from_slice(&offset.to_le_bytes());
    b
}

pub(crate) fn decode_location(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != 16 {
        return None;
    }
    Some((
        u64::from_le_bytes(b[..8].try_into().ok()?),
        u64::from_le_bytes(b[8..].try_into().ok()?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_flips() {
        let key = ShardKey {
            chunk: ChunkId([9; 32]),
            index: 3,
        };
        let payload = b"shard bytes";
        let h = encode_header(KIND_SHARD, key, payload);
        let d = decode_header(&h).unwrap();
        assert_eq!(d.key, key);
        assert_eq!(d.len as usize, payload.len());
        assert!(verify(&h, payload));
        let mut bad = payload.to_vec();
        bad[0] ^= 1;
        assert!(!verify(&h, &bad));
        let mut h2 = h;
        h2[0] = b'X';
        assert_eq!(decode_header(&h2), Err(HeaderError::Magic));
    }
}
