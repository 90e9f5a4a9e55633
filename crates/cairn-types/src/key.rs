use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::MAX_KEY_BYTES;

/// An object key: 1 to 1024 bytes of UTF-8. Keys are opaque names; Cairn never turns them into
/// file paths, so `..`, `/` and any other character are stored as given.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

/// Why an object key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidObjectKey {
    /// The key is empty.
    #[error("object key is empty")]
    Empty,
    /// The key is longer than 1024 bytes.
    #[error("object key is {0} bytes long; the limit is 1024")]
    TooLong(usize),
}

impl ObjectKey {
    /// Validates the key's length.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidObjectKey> {
        let key = key.into();
        if key.is_empty() {
            return Err(InvalidObjectKey::Empty);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(InvalidObjectKey::TooLong(key.len()));
        }
        Ok(Self(key))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = InvalidObjectKey;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<ObjectKey> for String {
    fn from(k: ObjectKey) -> String {
        k.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limits() {
        assert_eq!(ObjectKey::new(""), Err(InvalidObjectKey::Empty));
        assert!(ObjectKey::new("a".repeat(1024)).is_ok());
        assert_eq!(ObjectKey::new("a".repeat(1025)), Err(InvalidObjectKey::TooLong(1025)));
        assert!(ObjectKey::new("../../etc/passwd").is_ok());
    }
}
