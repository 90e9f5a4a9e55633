//! Verification of what the client says about a body: Content-MD5, x-amz-content-sha256 (for
//! signed single-chunk payloads), and the S3 additional checksums (CRC32, CRC32C, SHA-1,
//! SHA-256, CRC64/NVME) sent as headers or as aws-chunked trailers.

use base64::Engine;
use cairn::Checksums;
use http::HeaderMap;
use s3s::checksum::ChecksumHasher;
use s3s::dto::ChecksumAlgorithm;
use s3s::{s3_error, S3Result, TrailingHeaders};
use sha2::{Digest, Sha256};

const NAMES: [&str; 5] = ["crc32", "crc32c", "sha1", "sha256", "crc64nvme"];

fn get(c: &Checksums, name: &str) -> Option<String> {
    match name {
        "crc32" => c.crc32.clone(),
        "crc32c" => c.crc32c.clone(),
        "sha1" => c.sha1.clone(),
        "sha256" => c.sha256.clone(),
        _ => c.crc64nvme.clone(),
    }
}

fn set(c: &mut Checksums, name: &str, v: Option<String>) {
    match name {
        "crc32" => c.crc32 = v,
        "crc32c" => c.crc32c = v,
        "sha1" => c.sha1 = v,
        "sha256" => c.sha256 = v,
        _ => c.crc64nvme = v,
    }
}

fn enable(h: &mut ChecksumHasher, name: &str) -> S3Result<()> {
    match name {
        "crc32" => h.crc32 = Some(Default::default()),
        "crc32c" => h.crc32c = Some(Default::default()),
        "sha1" => h.sha1 = Some(Default::default()),
        "sha256" => h.sha256 = Some(Default::default()),
        "crc64nvme" => h.crc64nvme = Some(Default::default()),
        other => return Err(s3_error!(InvalidRequest, "unsupported checksum algorithm {other}")),
    }
    Ok(())
}

fn to_checksums(c: s3s::dto::Checksum) -> Checksums {
    Checksums {
        crc32: c.checksum_crc32,
        crc32c: c.checksum_crc32c,
        sha1: c.checksum_sha1,
        sha256: c.checksum_sha256,
        crc64nvme: c.checksum_crc64nvme,
    }
}

/// The algorithm (upper case, as S3 names it) of the first checksum `given` holds.
pub(crate) fn algorithm_of(given: &Checksums) -> Option<String> {
    NAMES
        .iter()
        .find(|n| get(given, n).is_some())
        .map(|n| n.to_ascii_uppercase())
}

/// Whether some checksum `claimed` holds differs from (or is missing in) `stored`.
pub(crate) fn contradicts(claimed: &Checksums, stored: &Checksums) -> bool {
    NAMES.iter().any(|n| {
        let c = get(claimed, n);
        c.is_some() && c != get(stored, n)
    })
}

/// Hashes a body as it streams by and checks it against the client's claims at the end.
pub(crate) struct BodyCheck {
    hasher: ChecksumHasher,
    enabled: Vec<&'static str>,
    expected: Checksums,
    content_md5: Option<[u8; 16]>,
    payload_sha256: Option<(Sha256, [u8; 32])>,
    /// `x-amz-decoded-content-length` of an aws-chunked body: what must have arrived.
    decoded_length: Option<u64>,
    /// The trailer `x-amz-trailer` announced; it must arrive.
    trailer: Option<String>,
}

impl BodyCheck {
    /// Prepares the checks for a request with these headers and checksum fields.
    pub(crate) fn new(
        headers: &HeaderMap,
        algorithm: Option<&ChecksumAlgorithm>,
        given: Checksums,
        content_md5: Option<&str>,
    ) -> S3Result<Self> {
        let mut hasher = ChecksumHasher::default();
        let mut enabled = Vec::new();
        let trailer = headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty());
        let decoded_length = match headers.get("x-amz-decoded-content-length") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .ok_or_else(|| s3_error!(InvalidArgument, "x-amz-decoded-content-length is not a number"))?,
            ),
        };
        for name in NAMES {
            let by_algorithm = algorithm.is_some_and(|a| a.as_str().eq_ignore_ascii_case(name));
            let by_trailer = trailer.as_deref() == Some(&format!("x-amz-checksum-{name}"));
            if get(&given, name).is_some() || by_algorithm || by_trailer {
                enable(&mut hasher, name)?;
                enabled.push(name);
            }
        }
        if let Some(a) = algorithm {
            if !NAMES.iter().any(|n| a.as_str().eq_ignore_ascii_case(n)) {
                return Err(s3_error!(
                    InvalidRequest,
                    "unsupported checksum algorithm {}",
                    a.as_str()
                ));
            }
        }
        let content_md5 = match content_md5 {
            None => None,
            Some(s) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .ok()
                    .and_then(|v| <[u8; 16]>::try_from(v).ok())
                    .ok_or_else(|| s3_error!(InvalidDigest, "the Content-MD5 you specified is not valid"))?,
            ),
        };
        let payload_sha256 = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| hex::decode(s).ok())
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .map(|want| (Sha256::new(), want));
        Ok(Self {
            hasher,
            enabled,
            expected: given,
            content_md5,
            payload_sha256,
            decoded_length,
            trailer,
        })
    }

    /// Feeds body bytes.
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        if let Some((h, _)) = &mut self.payload_sha256 {
            h.update(data);
        }
    }

    /// Checks every claim; returns the checksums to store with the object.
    pub(crate) fn finish(
        mut self,
        md5: &[u8; 16],
        size: u64,
        trailers: Option<&TrailingHeaders>,
    ) -> S3Result<Checksums> {
        if self.decoded_length.is_some_and(|n| n != size) {
            return Err(s3_error!(
                IncompleteBody,
                "the body did not match x-amz-decoded-content-length ({size} bytes arrived)"
            ));
        }
        if let Some((h, want)) = self.payload_sha256.take() {
            if h.finalize().as_slice() != want {
                return Err(crate::util::custom_error(
                    "XAmzContentSHA256Mismatch",
                    http::StatusCode::BAD_REQUEST,
                    "the provided x-amz-content-sha256 header does not match what was computed",
                ));
            }
        }
        if let Some(want) = self.content_md5 {
            if &want != md5 {
                return Err(s3_error!(
                    BadDigest,
                    "the Content-MD5 you specified did not match what we received"
                ));
            }
        }
        let received = trailers.and_then(TrailingHeaders::take);
        if let Some(announced) = &self.trailer {
            if !received.as_ref().is_some_and(|t| t.contains_key(announced.as_str())) {
                return Err(crate::util::custom_error(
                    "MalformedTrailerError",
                    http::StatusCode::BAD_REQUEST,
                    "the trailer announced in x-amz-trailer did not arrive",
                ));
            }
        }
        if let Some(t) = received {
            for name in NAMES {
                if let Some(v) = t.get(format!("x-amz-checksum-{name}")) {
                    let v = v
                        .to_str()
                        .map_err(|_| s3_error!(InvalidRequest, "invalid checksum trailer"))?;
                    set(&mut self.expected, name, Some(v.trim().to_string()));
                }
            }
        }
        let computed = to_checksums(self.hasher.finalize());
        let mut stored = Checksums::default();
        for name in self.enabled {
            let got = get(&computed, name);
            if let Some(want) = get(&self.expected, name) {
                if Some(&want) != got.as_ref() {
                    return Err(s3_error!(
                        BadDigest,
                        "the {} you specified did not match the calculated checksum",
                        name.to_ascii_uppercase()
                    ));
                }
            }
            set(&mut stored, name, got);
        }
        Ok(stored)
    }
}
