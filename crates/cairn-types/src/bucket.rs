use std::fmt;

use serde::{Deserialize, Serialize};

/// A bucket name that follows S3's general-purpose bucket naming rules: 3–63 characters of
/// lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit, no `..`,
/// not shaped like an IPv4 address, and none of the reserved prefixes and suffixes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);

/// Why a bucket name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bucket name {name:?}: {reason}")]
pub struct InvalidBucketName {
    /// The refused name.
    pub name: String,
    /// Which rule it broke.
    pub reason: &'static str,
}

impl BucketName {
    /// Validates `name` against S3's bucket naming rules.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidBucketName> {
        let name = name.into();
        match check(&name) {
            Ok(()) => Ok(Self(name)),
            Err(reason) => Err(InvalidBucketName { name, reason }),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(name: &str) -> Result<(), &'static str> {
    let b = name.as_bytes();
    if b.len() < 3 || b.len() > 63 {
        return Err("must be 3 to 63 characters long");
    }
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
    {
        return Err("may contain only lowercase letters, digits, '.' and '-'");
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err("must not contain '..', '.-' or '-.'");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Err("must not be formatted as an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Err("uses a reserved prefix");
        }
    }
    for suffix in ["-s3alias", "--ol-s3", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Err("uses a reserved suffix");
        }
    }
    Ok(())
}

impl TryFrom<String> for BucketName {
    type Error = InvalidBucketName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<BucketName> for String {
    fn from(b: BucketName) -> String {
        b.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["abc", "photos", "my-bucket.v2", "a1b2c3", &"a".repeat(63)] {
            assert!(BucketName::new(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        for n in [
            "ab",
            &"a".repeat(64),
            "Photos",
            "-abc",
            "abc-",
            "a..b",
            "192.168.1.1",
            "a_b",
            "xn--abc",
            "abc-s3alias",
            "a b",
        ] {
            assert!(BucketName::new(n).is_err(), "{n}");
        }
    }
}
