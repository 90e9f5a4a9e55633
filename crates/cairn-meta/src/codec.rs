//! Versioned binary encoding of metadata values: one format-version byte, then postcard.
//!
//! Format 2 added a last field to [`crate::ObjectRecord`] and [`crate::UploadRecord`] (their
//! storage class). Values of format 1 still decode, wherever those records sit in them (alone,
//! or inside a command of the Raft log): while one is decoded, [`legacy`] is true and the two
//! records read their format-1 fields only, taking the new field's default.

use std::cell::Cell;

use serde::{de::DeserializeOwned, Serialize};

/// The format version written in front of every value.
pub const FORMAT_VERSION: u8 = 2;

/// The oldest format version this build decodes.
const OLDEST_VERSION: u8 = 1;

thread_local! {
    /// Set while a format-1 value is decoded on this thread.
    static LEGACY: Cell<bool> = const { Cell::new(false) };
}

/// Whether the value being decoded on this thread was written in format 1 (records whose
/// layout changed since read their old layout).
pub(crate) fn legacy() -> bool {
    LEGACY.with(Cell::get)
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
            /// Clears the flag however decoding ends.
            struct Reset;
            impl Drop for Reset {
                fn drop(&mut self) {
                    LEGACY.with(|l| l.set(false));
                }
            }
            LEGACY.with(|l| l.set(true));
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
        assert!(!legacy(), "the flag is cleared after decoding");
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
        assert!(matches!(decode::<u8>(&[3, 0]), Err(DecodeError::UnknownVersion(3))));
    }
}
