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
//!
//! Verifying a candidate means reading the payload length its header claims, and payloads are
//! client data: an upload full of fake headers claiming large lengths would make a resync read
//! without end. Each resynchronisation therefore verifies at most [`RESYNC_BUDGET`] bytes of
//! candidates; past it, the rest of the segment is reported as damage and left as it is (never
//! cut: it may hold acknowledged records, which parity or a later repair can rebuild).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::format::{self, Header, HEADER_LEN, KIND_SHARD, KIND_TOMBSTONE, MAGIC};
use crate::ShardKey;

/// Most bytes of candidate records one resynchronisation verifies before it gives up.
pub(crate) const RESYNC_BUDGET: u64 = 1 << 30;

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
    /// Bytes of candidate records read while resynchronising (bounded by [`RESYNC_BUDGET`]
    /// per damaged range).
    pub resync_bytes: u64,
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

/// Where a resynchronisation ended.
enum Resync {
    /// The first valid record at or after the start.
    Found(u64),
    /// No valid record until the end.
    None,
    /// The verification budget ran out first.
    GaveUp,
}

/// Looks for the first valid record at or after `from`, verifying at most `budget` bytes of
/// candidates; adds what it read to `spent`.
fn resync(file: &File, from: u64, size: u64, buf: &mut Vec<u8>, budget: u64, spent: &mut u64) -> io::Result<Resync> {
    const WINDOW: u64 = 1 << 20;
    let mut window = Vec::new();
    let mut pos = from;
    let mut left = budget;
    while pos + HEADER_LEN as u64 <= size {
        // Read a header's length past the window, so a magic straddling two windows is seen
        // once and every candidate's whole header is at hand to price its verification.
        let n = (WINDOW + HEADER_LEN as u64).min(size - pos) as usize;
        window.resize(n, 0);
        file.read_exact_at(&mut window, pos)?;
        let mut i = 0usize;
        while i + MAGIC.len() <= n && (i as u64) < WINDOW {
            if window[i..i + MAGIC.len()] == MAGIC {
                // What verifying this candidate reads (its header, and its payload if the
                // header decodes and fits): charged before reading.
                let cost = claimed_len(&window[i..], size - pos - i as u64);
                if cost > left {
                    return Ok(Resync::GaveUp);
                }
                left -= cost;
                *spent += cost;
                if let Check::Good(_) = check(file, pos + i as u64, size, buf)? {
                    return Ok(Resync::Found(pos + i as u64));
                }
            }
            i += 1;
        }
        pos += WINDOW;
    }
    Ok(Resync::None)
}

/// The bytes `check` reads for a candidate starting at `bytes[0]` with `room` bytes left in
/// the file: the header, plus the claimed payload when the header decodes and fits.
fn claimed_len(bytes: &[u8], room: u64) -> u64 {
    let header = HEADER_LEN as u64;
    let Some(h) = bytes.get(..HEADER_LEN) else {
        return header;
    };
    let h: &[u8; HEADER_LEN] = h.try_into().expect("header length");
    match format::decode_header(h) {
        Ok(d) if header + u64::from(d.len) <= room => header + u64::from(d.len),
        _ => header,
    }
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
            Some((_, end)) => Resync::Found(end),
            None => resync(file, offset + 1, size, &mut buf, RESYNC_BUDGET, &mut out.resync_bytes)?,
        };
        let next = match next {
            Resync::Found(n) => n,
            // Nothing valid follows in the newest segment: a torn tail, which the caller cuts.
            Resync::None if !sealed => break,
            // Nothing valid until the end of a sealed segment, or no way to tell within the
            // budget: report the rest as damage and cut nothing.
            Resync::None | Resync::GaveUp => {
                out.damage.push(Damage {
                    offset,
                    len: size - offset,
                    key: None,
                });
                out.valid_end = size;
                break;
            }
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
