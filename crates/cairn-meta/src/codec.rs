//! Versioned binary encoding of metadata values: one format-version byte, then postcard.
//!
//! Postcard lays a struct out as its fields in order, with no names and no count, so a record
//! may only grow by new last fields, each marked with the format that added it
//! (`#[serde(deserialize_with = "crate::codec::since_2")]`, ...). While a value of an older
//! format is decoded — alone, or inside a command of the Raft log — [`format`] says which, and
//! such a field is not read: it takes its type's default.
//!
//! - Format 2 added the storage class of [`crate::ObjectRecord`] and [`crate::UploadRecord`].
//! - Format 3 added the storage pool of [`crate::StorageNodeRecord`], [`crate::MapNode`],
//!   [`crate::ChunkPlacement`] and [`crate::WritePlacement`].

use std::cell::Cell;

use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize};

/// The format version written in front of every value.
pub const FORMAT_VERSION: u8 = 3;

/// The oldest format version this build decodes.
const OLDEST_VERSION: u8 = 1;

thread_local! {
    /// The format of the value being decoded on this thread.
    static FORMAT: Cell<u8> = const { Cell::new(FORMAT_VERSION) };
}

/// The format of the value being decoded on this thread ([`FORMAT_VERSION`] outside
/// [`decode`]: values of other encodings, such as JSON, have every field).
pub(crate) fn format() -> u8 {
    FORMAT.with(Cell::get)
}

/// Reads a field added by format `since`: absent (the type's default) in older values.
fn added_in<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D, since: u8) -> Result<T, D::Error> {
    if format() < since {
        Ok(T::default())
    } else {
        T::deserialize(d)
    }
}

/// A field added by format 2 (see the module's documentation).
pub(crate) fn since_2<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    added_in(d, 2)
}

/// A field added by format 3 (see the module's documentation).
pub(crate) fn since_3<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    added_in(d, 3)
}

/// A stored value that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The value is empty.
    #[error("empty value")]
    Empty,
    /// The value was written by a format this build does not know.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// The bytes do not decode.
    #[error("malformed value: {0}")]
    Malformed(#[from] postcard::Error),
}

/// Encodes `value` behind the current format version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    postcard::to_io(value, &mut out).expect("writing to a Vec cannot fail");
    out
}

/// Decodes a value written by [`encode`] of this format or an older one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&v, rest)) if (OLDEST_VERSION..FORMAT_VERSION).contains(&v) => {
            /// Restores the current format however decoding ends.
            struct Reset;
            impl Drop for Reset {
                fn drop(&mut self) {
                    FORMAT.with(|f| f.set(FORMAT_VERSION));
                }
            }
            FORMAT.with(|f| f.set(v));
            let _reset = Reset;
            Ok(postcard::from_bytes(rest)?)
        }
        Some((&v, _)) => Err(DecodeError::UnknownVersion(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, ObjectRecord, UploadRecord};

    /// The layout of an object record in format 1 (before storage classes).
    #[derive(Serialize)]
    struct ObjectV1<'a> {
        version_id: &'a str,
        size: u64,
        etag: &'a str,
        last_modified: i64,
        attrs: crate::ObjectAttrs,
        checksums: crate::Checksums,
        body: Body,
        parts: Vec<crate::PartExtent>,
        owner: &'a str,
    }

    fn v1(value: &impl Serialize) -> Vec<u8> {
        let mut out = vec![1];
        postcard::to_io(value, &mut out).unwrap();
        out
    }

    fn old_object() -> ObjectV1<'static> {
        ObjectV1 {
            version_id: "v1",
            size: 3,
            etag: "e",
            last_modified: 7,
            attrs: Default::default(),
            checksums: Default::default(),
            body: Body::Inline(b"abc".to_vec()),
            parts: Vec::new(),
            owner: "alice",
        }
    }

    #[test]
    fn records_of_format_1_decode_as_standard_wherever_they_sit() {
        let o: ObjectRecord = decode(&v1(&old_object())).unwrap();
        assert_eq!((o.version_id.as_str(), o.owner.as_str()), ("v1", "alice"));
        assert_eq!(o.body, Body::Inline(b"abc".to_vec()));
        assert_eq!(o.storage_class, None);
        // Inside another value (a command in the Raft log), with fields after it.
        let (n, o, tail): (u8, ObjectRecord, String) = decode(&v1(&(9u8, old_object(), "after"))).unwrap();
        assert_eq!((n, o.owner.as_str(), tail.as_str()), (9, "alice", "after"));
        assert_eq!(format(), FORMAT_VERSION, "the format is restored after decoding");
        // Format 2 keeps the class, in and out of other values.
        let o2 = ObjectRecord {
            storage_class: Some("REDUCED_REDUNDANCY".into()),
            ..o
        };
        assert_eq!(decode::<ObjectRecord>(&encode(&o2)).unwrap(), o2);
        let pair: (ObjectRecord, String) = decode(&encode(&(o2.clone(), "x".to_string()))).unwrap();
        assert_eq!(pair, (o2, "x".to_string()));
        let up = UploadRecord {
            upload_id: "u".into(),
            bucket: "b".into(),
            key: "k".into(),
            initiated: 1,
            attrs: Default::default(),
            checksum_algorithm: Some("CRC32".into()),
            owner: "o".into(),
            storage_class: Some("REDUCED_REDUNDANCY".into()),
        };
        assert_eq!(decode::<UploadRecord>(&encode(&up)).unwrap(), up);
        // A format-1 upload record is the same without the class.
        let old = (
            &up.upload_id,
            &up.bucket,
            &up.key,
            up.initiated,
            &up.attrs,
            &up.checksum_algorithm,
            &up.owner,
        );
        let back: UploadRecord = decode(&v1(&old)).unwrap();
        assert_eq!(
            back,
            UploadRecord {
                storage_class: None,
                ..up
            }
        );
        assert!(matches!(decode::<u8>(&[4, 0]), Err(DecodeError::UnknownVersion(4))));
    }

    /// A value as format 2 wrote it.
    fn v2(value: &impl Serialize) -> Vec<u8> {
        let mut out = vec![2];
        postcard::to_io(value, &mut out).unwrap();
        out
    }

    #[test]
    fn records_of_format_2_decode_in_the_default_pool() {
        use crate::{ChunkPlacement, DiskRecord, MapNode, StorageNodeRecord, WritePlacement};
        let disk = DiskRecord {
            path: "/d".into(),
            capacity_total: 1 << 40,
            capacity_free: 1,
            writable: true,
            shards: 2,
            damaged: 0,
        };
        // Format 2's node: id, addr, zone, disks, registered, heartbeat.
        let old_node = ("n1", "127.0.0.1:1", "z1", vec![disk.clone()], 5i64, 6i64);
        let n: StorageNodeRecord = decode(&v2(&old_node)).unwrap();
        assert_eq!((n.id.as_str(), n.heartbeat, n.pool), ("n1", 6, None));
        let old_map_node = ("n1", "z1", vec![3u64], true);
        let (m, tail): (MapNode, u8) = decode(&v2(&(old_map_node, 9u8))).unwrap();
        assert_eq!((m.weights, m.draining, m.pool, tail), (vec![3], true, None, 9));
        let old_placement = (7u64, 0b10u32, vec![(1u8, "n2/0")]);
        let p: ChunkPlacement = decode(&v2(&old_placement)).unwrap();
        assert_eq!(
            (p.epoch, p.missing, p.moved_to(1), &p.pool),
            (7, 0b10, Some("n2/0"), &None)
        );
        let w: WritePlacement = decode(&v2(&(7u64, Vec::<crate::ShardExceptions>::new()))).unwrap();
        assert_eq!((w.epoch, w.pool), (7, None));
        // Format 3 keeps the pool.
        let n3 = StorageNodeRecord {
            pool: Some("ssd".into()),
            ..n
        };
        assert_eq!(decode::<StorageNodeRecord>(&encode(&n3)).unwrap(), n3);
        let p3 = ChunkPlacement {
            pool: Some("ssd".into()),
            ..p
        };
        assert_eq!(
            decode::<(ChunkPlacement, u8)>(&encode(&(p3.clone(), 1u8))).unwrap(),
            (p3, 1)
        );
    }
}
