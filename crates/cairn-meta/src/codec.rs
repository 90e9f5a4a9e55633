//! Versioned binary encoding of metadata values: one format-version byte, then postcard.

use serde::{de::DeserializeOwned, Serialize};

/// The format version written in front of every value.
pub const FORMAT_VERSION: u8 = 1;

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

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
        Some((&v, _)) => Err(DecodeError::UnknownVersion(v)),
    }
}
