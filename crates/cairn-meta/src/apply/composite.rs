//! The checksum of a multipart object, as S3 computes it for a `COMPOSITE` checksum: the
//! checksum of the concatenated binary checksums of its parts, in base64, followed by `-N`
//! (N parts).

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::records::{Checksums, PartRecord};

/// The composite checksums of an object made of `parts`, for the algorithm the upload was
/// created with (`CRC32`, `CRC32C`, `SHA1` or `SHA256`, any case). None when no algorithm was
/// requested, for `CRC64NVME` (S3 offers it only as a full-object checksum), or when a part
/// lacks a well-formed checksum of that algorithm.
pub(super) fn composite(algorithm: Option<&str>, parts: &[&PartRecord]) -> Checksums {
    let mut out = Checksums::default();
    let Some(algorithm) = algorithm.map(str::to_ascii_lowercase) else {
        return out;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut joined = Vec::with_capacity(parts.len() * 32);
    for p in parts {
        let given = match algorithm.as_str() {
            "crc32" => &p.checksums.crc32,
            "crc32c" => &p.checksums.crc32c,
            "sha1" => &p.checksums.sha1,
            "sha256" => &p.checksums.sha256,
            _ => return out,
        };
        match given.as_deref().map(|s| b64.decode(s)) {
            Some(Ok(bytes)) => joined.extend_from_slice(&bytes),
            _ => return out,
        }
    }
    let digest: Vec<u8> = match algorithm.as_str() {
        "crc32" => crc32fast::hash(&joined).to_be_bytes().to_vec(),
        "crc32c" => crc32c::crc32c(&joined).to_be_bytes().to_vec(),
        "sha1" => Sha1::digest(&joined).to_vec(),
        _ => Sha256::digest(&joined).to_vec(),
    };
    let value = Some(format!("{}-{}", b64.encode(digest), parts.len()));
    match algorithm.as_str() {
        "crc32" => out.crc32 = value,
        "crc32c" => out.crc32c = value,
        "sha1" => out.sha1 = value,
        _ => out.sha256 = value,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Body;

    fn part(n: u32, crc32: &str) -> PartRecord {
        PartRecord {
            number: n,
            size: 1,
            etag: String::new(),
            last_modified: 0,
            body: Body::Chunks(vec![]),
            checksums: Checksums {
                crc32: Some(crc32.into()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn crc32_of_the_part_checksums_with_the_part_count() {
        // Parts "a" and "b": CRC32 e8b7be43 and 71beeff9.
        let (a, b) = (part(1, "6Le+Qw=="), part(2, "cb7v+Q=="));
        let got = composite(Some("CRC32"), &[&a, &b]);
        let want = crc32fast::hash(&[0xe8, 0xb7, 0xbe, 0x43, 0x71, 0xbe, 0xef, 0xf9]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(want.to_be_bytes());
        assert_eq!(got.crc32, Some(format!("{b64}-2")));
        // A part without that checksum, or an algorithm S3 does not compose: none.
        let mut bare = part(3, "");
        bare.checksums.crc32 = None;
        assert_eq!(composite(Some("crc32"), &[&a, &bare]), Checksums::default());
        assert_eq!(composite(Some("CRC64NVME"), &[&a]), Checksums::default());
        assert_eq!(composite(None, &[&a]), Checksums::default());
    }
}
