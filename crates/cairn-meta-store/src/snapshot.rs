//! Snapshot files: the state column family at one applied log id, written as a stream of
//! key/value records so that building, sending, receiving and installing a snapshot each hold
//! one record (and a bounded buffer) in memory, never the state.
//!
//! Format (little-endian):
//! - magic `CAIRNSN1`;
//! - records: `u32` key length, `u32` value length, key, value (keys in ascending order, as
//!   RocksDB iterates them);
//! - trailer: `u32::MAX`, `u64` record count, `u32` CRC32 of every byte before the CRC.
//!
//! A file is complete only once its trailer checks: [`SnapshotFile::verify`] reads it once
//! before anything is installed from it, so a truncated or damaged file is refused before the
//! state is touched.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CAIRNSN1";
const END: u32 = u32::MAX;
/// Largest key or value a snapshot may hold (the state never holds larger ones; a bigger
/// length is damage, refused before allocating it).
const MAX_FIELD: u32 = 1 << 30;
/// Buffer of readers and writers of snapshot files.
const BUFFER: usize = 1 << 20;

/// A complete snapshot file, open for reading. The open handle keeps the data readable even
/// after a newer snapshot replaces (and unlinks) this one, so a transfer in progress is never
/// cut by a new snapshot.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: File,
}

impl SnapshotFile {
    /// Opens the snapshot file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: File::open(path)?,
        })
    }

    /// Where the file is (it may have been replaced since it was opened).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Whether the file is empty (a complete snapshot never is).
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end. Independent of any other
    /// reader of the same file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    /// Reads the whole file once and checks its framing, trailer and CRC. Returns the number
    /// of records.
    pub fn verify(&self) -> io::Result<u64> {
        let mut n = 0;
        let mut records = self.records()?;
        while records.next_record()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// The records, in order. The last call of [`Records::next_record`] fails if the trailer
    /// does not check.
    pub fn records(&self) -> io::Result<Records<'_>> {
        let mut reader = Records {
            inner: BufReader::with_capacity(
                BUFFER,
                PositionedReader {
                    file: &self.file,
                    pos: 0,
                },
            ),
            crc: crc32fast::Hasher::new(),
            count: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(damaged("not a Cairn snapshot file"));
        }
        Ok(reader)
    }
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot file: {what}"))
}

/// Reads a file from offset 0 without moving any shared file offset.
struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The records of a snapshot file (see [`SnapshotFile::records`]).
pub struct Records<'a> {
    inner: BufReader<PositionedReader<'a>>,
    crc: crc32fast::Hasher,
    count: u64,
    done: bool,
}

impl Records<'_> {
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => damaged("truncated"),
            _ => e,
        })?;
        self.crc.update(buf);
        Ok(())
    }

    /// Reads a field of `len` bytes. The buffer grows with what is actually read, so a damaged
    /// length costs no more memory than the file holds.
    fn read_field(&mut self, len: u32) -> io::Result<Vec<u8>> {
        let mut field = Vec::new();
        (&mut self.inner).take(u64::from(len)).read_to_end(&mut field)?;
        if field.len() != len as usize {
            return Err(damaged("truncated"));
        }
        self.crc.update(&field);
        Ok(field)
    }

    fn read_u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The next key/value record; `None` after the last one, once the trailer has checked.
    pub fn next_record(&mut self) -> io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let klen = self.read_u32()?;
        if klen == END {
            let mut count = [0u8; 8];
            self.read_exact(&mut count)?;
            let expected = self.crc.clone().finalize();
            let mut crc = [0u8; 4];
            self.inner.read_exact(&mut crc).map_err(|_| damaged("truncated"))?;
            if u64::from_le_bytes(count) != self.count || u32::from_le_bytes(crc) != expected {
                return Err(damaged("checksum mismatch"));
            }
            let mut extra = [0u8; 1];
            if self.inner.read(&mut extra)? != 0 {
                return Err(damaged("bytes after the trailer"));
            }
            self.done = true;
            return Ok(None);
        }
        let vlen = self.read_u32()?;
        if klen > MAX_FIELD || vlen > MAX_FIELD {
            return Err(damaged("record too large"));
        }
        let key = self.read_field(klen)?;
        let value = self.read_field(vlen)?;
        self.count += 1;
        Ok(Some((key, value)))
    }
}

/// Writes a snapshot file from records (when building one from the state).
pub struct RecordWriter {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    count: u64,
}

impl RecordWriter {
    /// Creates `path` (which must not exist) and writes the header.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(path)?;
        let mut w = Self {
            out: BufWriter::with_capacity(BUFFER, file),
            crc: crc32fast::Hasher::new(),
            count: 0,
        };
        w.write(MAGIC)?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc.update(bytes);
        self.out.write_all(bytes)
    }

    /// Appends one record.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let (Ok(klen), Ok(vlen)) = (u32::try_from(key.len()), u32::try_from(value.len())) else {
            return Err(damaged("record too large"));
        };
        if klen > MAX_FIELD || vlen > MAX_FIELD {
            return Err(damaged("record too large"));
        }
        self.write(&klen.to_le_bytes())?;
        self.write(&vlen.to_le_bytes())?;
        self.write(key)?;
        self.write(value)?;
        self.count += 1;
        Ok(())
    }

    /// Writes the trailer and fsyncs the file.
    pub fn finish(mut self) -> io::Result<()> {
        self.write(&END.to_le_bytes())?;
        self.write(&self.count.to_le_bytes())?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// Receives a snapshot file in pieces (from a leader), in a temporary file of the snapshot
/// directory, removed if dropped before [`IncomingSnapshot::finish`].
pub struct IncomingSnapshot {
    path: PathBuf,
    file: Option<BufWriter<File>>,
}

impl IncomingSnapshot {
    /// Starts receiving into a new temporary file in `dir`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("incoming-{}.tmp", unique()));
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(Self {
            path,
            file: Some(BufWriter::with_capacity(BUFFER, file)),
        })
    }

    /// Appends a piece.
    pub fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        self.file.as_mut().expect("not finished").write_all(piece)
    }

    /// Fsyncs the file, checks it ([`SnapshotFile::verify`]) and opens it.
    pub fn finish(mut self) -> io::Result<SnapshotFile> {
        let file = self.file.take().expect("not finished");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let snapshot = SnapshotFile::open(&self.path)?;
        snapshot.verify()?;
        // Kept: the state machine moves it into place when installing it.
        self.path = PathBuf::new();
        Ok(snapshot)
    }
}

impl Drop for IncomingSnapshot {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A name part unique within this process's lifetime and across restarts.
pub(crate) fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, records: &[(&[u8], &[u8])]) {
        let mut w = RecordWriter::create(path).unwrap();
        for (k, v) in records {
            w.push(k, v).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn records_come_back_in_order_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let big = vec![7u8; 3 * BUFFER + 5];
        write(&path, &[(b"a", b"1"), (b"b", &big), (b"c", b"")]);
        let f = SnapshotFile::open(&path).unwrap();
        assert_eq!(f.verify().unwrap(), 3);
        let mut r = f.records().unwrap();
        assert_eq!(r.next_record().unwrap().unwrap(), (b"a".to_vec(), b"1".to_vec()));
        assert_eq!(r.next_record().unwrap().unwrap(), (b"b".to_vec(), big));
        assert_eq!(r.next_record().unwrap().unwrap(), (b"c".to_vec(), vec![]));
        assert!(r.next_record().unwrap().is_none());
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn any_damage_or_truncation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        write(&path, &[(b"key-1", b"value-1"), (b"key-2", b"value-2")]);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                SnapshotFile::open(&path).unwrap().verify().is_err(),
                "flip at {at} accepted"
            );
        }
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(
                SnapshotFile::open(&path).unwrap().verify().is_err(),
                "cut at {len} accepted"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(SnapshotFile::open(&path).unwrap().verify().is_err());
    }

    #[test]
    fn an_incoming_snapshot_is_checked_and_a_dropped_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        write(&src, &[(b"k", b"v")]);
        let bytes = std::fs::read(&src).unwrap();
        let mut inc = IncomingSnapshot::create(&dir.path().join("in")).unwrap();
        for piece in bytes.chunks(3) {
            inc.write(piece).unwrap();
        }
        let got = inc.finish().unwrap();
        assert_eq!(got.verify().unwrap(), 1);

        let mut cut = IncomingSnapshot::create(&dir.path().join("in")).unwrap();
        cut.write(&bytes[..bytes.len() - 1]).unwrap();
        assert!(cut.finish().is_err());
        let mut dropped = IncomingSnapshot::create(&dir.path().join("in")).unwrap();
        dropped.write(&bytes).unwrap();
        drop(dropped);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("in")).unwrap().collect();
        assert_eq!(left.len(), 1, "only the finished snapshot stays: {left:?}");
    }
}
