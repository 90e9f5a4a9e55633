//! Reading a segment file back: which records it holds, which byte ranges are damaged, and
//! where a torn tail starts.
//!
//! A segment is a sequence of records (see [`crate::format`]). Scanning walks it record by
//! record. When a record is bad (a header that does not decode, a length past the end, or a
//! CRC that does not match) the scan does not give up: it looks for the next valid record and
//! carries on from there, so one damaged record costs only itself.
//!
//! - If the bad record's header decodes and a valid record starts exactly where that header
//!   says the record ends, the length is trusted: the record is reported as damaged *with its
//!   key*, so a read of it answers `Corrupt` and the chunk can be rebuilt from parity.
//! - Otherwise the scan resynchronises: it searches the following bytes for the record magic
//!   and takes the first position where a whole record (header and payload) passes its CRC.
//!   The bytes in between are reported as a damaged range without a key.
//! - If no valid record follows a bad one, the bad bytes are a torn tail: the remains of a
//!   write that was never acknowledged (acknowledgement waits for fdatasync of the whole
//!   batch). Only then may the caller cut the file.
//!
//! Resynchronising could in principle take the inside of a damaged record's payload for a
//! record when that payload happens to contain a well-formed record (with a matching CRC32).
//! Such a shard is never trusted by the data path on its own: every chunk is checked against
//! its BLAKE3 id after decoding.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::format::{self, Header, HEADER_LEN, KIND_SHARD, KIND_TOMBSTONE, MAGIC};
use crate::ShardKey;

/// Marker kind (never written in a segment; used in index files and in memory) for a shard
/// record whose key and length are known but whose bytes fail their CRC.
pub(crate) const KIND_DAMAGED: u8 = 3;

/// One record of a segment, as recovery (or an index file) knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Offset of the record header in the segment.
    pub offset: u64,
    /// [`KIND_SHARD`], [`KIND_TOMBSTONE`] or [`KIND_DAMAGED`].
    pub kind: u8,
    /// The shard it stores or cancels.
    pub key: ShardKey,
    /// Payload length.
    pub len: u32,
    /// For a tombstone: the (segment, offset) of the record it cancels.
    pub target: Option<(u64, u64)>,
}

/// A damaged byte range found by a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    /// First damaged byte.
    pub offset: u64,
    /// Length of the damaged range.
    pub len: u64,
    /// The shard stored there, when its header could still be trusted.
    pub key: Option<ShardKey>,
}

/// What a scan of one segment found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Records in file order, damaged shards with a known key included.
    pub entries: Vec<Entry>,
    /// Damaged ranges followed by a valid record (or, in a sealed segment, by the end).
    pub damage: Vec<Damage>,
    /// End of the last record that is valid or followed by a valid one. Bytes past it hold no
    /// valid record: in the newest segment they are a torn tail.
    pub valid_end: u64,
}

enum Check {
    Good(Entry),
    /// A bad record; the header if it decoded and its claimed end lies within the file.
    Bad(Option<Header>),
}

/// Checks the record at `offset`: header, bounds and CRC32 of header and payload.
fn check(file: &File, offset: u64, size: u64, buf: &mut Vec<u8>) -> io::Result<Check> {
    if offset + HEADER_LEN as u64 > size {
        return Ok(Check::Bad(None));
    }
    let mut h = [0u8; HEADER_LEN];
    file.read_exact_at(&mut h, offset)?;
    let Ok(header) = format::decode_header(&h) else {
        return Ok(Check::Bad(None));
    };
    let end = offset + HEADER_LEN as u64 + u64::from(header.len);
    if end > size {
        return Ok(Check::Bad(None));
    }
    buf.resize(header.len as usize, 0);
    file.read_exact_at(buf, offset + HEADER_LEN as u64)?;
    if !format::verify(&h, buf) {
        return Ok(Check::Bad(Some(header)));
    }
    let target = if header.kind == KIND_TOMBSTONE {
        format::decode_location(buf)
    } else {
        None
    };
    Ok(Check::Good(Entry {
        offset,
        kind: header.kind,
        key: header.key,
        len: header.len,
        target,
    }))
}

/// The offset of the first valid record at or after `from`, if any.
fn resync(file: &File, from: u64, size: u64, buf: &mut Vec<u8>) -> io::Result<Option<u64>> {
    const WINDOW: u64 = 1 << 20;
    let mut window = Vec::new();
    let mut pos = from;
    while pos + HEADER_LEN as u64 <= size {
        // Read 3 bytes past the window so a magic straddling two windows is seen once.
        let n = (WINDOW + 3).min(size - pos) as usize;
        window.resize(n, 0);
        file.read_exact_at(&mut window, pos)?;
        let mut i = 0usize;
        while i + MAGIC.len() <= n && (i as u64) < WINDOW {
            if window[i..i + MAGIC.len()] == MAGIC {
                if let Check::Good(_) = check(file, pos + i as u64, size, buf)? {
                    return Ok(Some(pos + i as u64));
                }
            }
            i += 1;
        }
        pos += WINDOW;
    }
    Ok(None)
}

/// Scans `size` bytes of a segment. `sealed` segments were complete and synced when they were
/// sealed, so a bad last record whose header still fits the file exactly is damage, not a torn
/// write.
pub(crate) fn scan(file: &File, size: u64, sealed: bool) -> io::Result<Scan> {
    let mut out = Scan::default();
    let mut buf = Vec::new();
    let mut offset = 0u64;
    while offset < size {
        let header = match check(file, offset, size, &mut buf)? {
            Check::Good(entry) => {
                offset += HEADER_LEN as u64 + u64::from(entry.len);
                out.entries.push(entry);
                out.valid_end = offset;
                continue;
            }
            Check::Bad(header) => header,
        };
        // Trust the bad record's length only if a valid record (or a sealed end) follows it.
        let trusted = match header {
            Some(h) => {
                let end = offset + HEADER_LEN as u64 + u64::from(h.len);
                let follows = if end == size {
                    sealed
                } else {
                    matches!(check(file, end, size, &mut buf)?, Check::Good(_))
                };
                follows.then_some((h, end))
            }
            None => None,
        };
        let next = match trusted {
            Some((_, end)) => Some(end),
            None => resync(file, offset + 1, size, &mut buf)?,
        };
        let Some(next) = next else {
            if sealed {
                // Nothing valid until the end of a sealed segment: all of it is damage.
                out.damage.push(Damage {
                    offset,
                    len: size - offset,
                    key: None,
                });
                out.valid_end = size;
            }
            break;
        };
        let key = trusted.filter(|(h, _)| h.kind == KIND_SHARD).map(|(h, _)| h.key);
        out.damage.push(Damage {
            offset,
            len: next - offset,
            key,
        });
        if let Some((h, _)) = trusted.filter(|(h, _)| h.kind == KIND_SHARD) {
            out.entries.push(Entry {
                offset,
                kind: KIND_DAMAGED,
                key: h.key,
                len: h.len,
                target: None,
            });
        }
        offset = next;
        out.valid_end = next;
    }
    Ok(out)
}
