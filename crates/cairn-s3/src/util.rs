//! Small conversions between S3 DTOs and Cairn records.

use cairn::{Object, ObjectAttrs};
use s3s::dto::{ETag, ETagCondition, Timestamp, TimestampFormat};
use s3s::{s3_error, S3Request, S3Result};
use time::OffsetDateTime;

/// The access key that signed the request (present: anonymous requests never get here).
pub(crate) fn caller<T>(req: &S3Request<T>) -> S3Result<String> {
    req.credentials
        .as_ref()
        .map(|c| c.access_key.clone())
        .ok_or_else(|| s3_error!(AccessDenied))
}

/// Milliseconds since the epoch to an S3 timestamp.
pub(crate) fn timestamp(ms: i64) -> Timestamp {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// Seconds since the epoch of an S3 timestamp (HTTP dates have second precision).
pub(crate) fn seconds(t: &Timestamp) -> i64 {
    OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// The ETag of a record as a DTO.
pub(crate) fn etag(o: &Object) -> ETag {
    ETag::Strong(o.etag.clone())
}

fn etag_matches(cond: &ETagCondition, current: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(ETag::Strong(v) | ETag::Weak(v)) => v.trim_matches('"') == current,
    }
}

/// Evaluates GET/HEAD (or copy-source) preconditions as RFC 9110 orders them: If-Match, then
/// If-Unmodified-Since (only without If-Match), then If-None-Match, then If-Modified-Since
/// (only without If-None-Match). Returns PreconditionFailed or NotModified.
pub(crate) fn check_preconditions(
    o: &Object,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    not_modified_is_412: bool,
) -> S3Result<()> {
    let modified = o.last_modified.div_euclid(1000);
    if let Some(c) = if_match {
        if !etag_matches(c, &o.etag) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(t) = if_unmodified_since {
        if modified > seconds(t) {
            return Err(s3_error!(PreconditionFailed));
        }
    }
    let not_modified = || {
        if not_modified_is_412 {
            s3_error!(PreconditionFailed)
        } else {
            s3_error!(NotModified)
        }
    };
    if let Some(c) = if_none_match {
        if etag_matches(c, &o.etag) {
            return Err(not_modified());
        }
    } else if let Some(t) = if_modified_since {
        if modified <= seconds(t) {
            return Err(not_modified());
        }
    }
    Ok(())
}

/// Builds the stored attributes from request headers, enforcing S3's metadata size limit.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attrs(
    content_type: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<s3s::dto::Metadata>,
) -> S3Result<ObjectAttrs> {
    let user_metadata: std::collections::BTreeMap<String, String> = metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let size: usize = user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > cairn_types::limits::MAX_USER_METADATA_BYTES {
        return Err(s3_error!(
            MetadataTooLarge,
            "your metadata headers exceed the maximum allowed metadata size of 2 KiB"
        ));
    }
    let expires = match expires {
        None => None,
        Some(t) => {
            let mut buf = Vec::new();
            t.format(TimestampFormat::HttpDate, &mut buf)
                .map_err(|_| s3_error!(InvalidArgument, "invalid Expires"))?;
            Some(String::from_utf8_lossy(&buf).into_owned())
        }
    };
    Ok(ObjectAttrs {
        content_type,
        content_disposition,
        content_encoding,
        content_language,
        cache_control,
        expires,
        user_metadata,
    })
}

/// The stored Expires header back as a timestamp.
pub(crate) fn expires(a: &ObjectAttrs) -> Option<Timestamp> {
    a.expires
        .as_deref()
        .and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

/// User metadata as the DTO map.
pub(crate) fn metadata(a: &ObjectAttrs) -> Option<s3s::dto::Metadata> {
    if a.user_metadata.is_empty() {
        None
    } else {
        Some(a.user_metadata.clone().into_iter().collect())
    }
}

/// Validates an object key's length.
pub(crate) fn check_key(key: &str) -> S3Result<()> {
    if key.len() > cairn_types::limits::MAX_KEY_BYTES {
        return Err(s3_error!(KeyTooLongError));
    }
    if key.is_empty() {
        return Err(s3_error!(InvalidArgument, "object key must not be empty"));
    }
    Ok(())
}

/// An S3 error code that `s3s` does not list, with its status.
pub(crate) fn custom_error(code: &str, status: http::StatusCode, message: &'static str) -> s3s::S3Error {
    let code: s3s::S3ErrorCode = code.parse().unwrap_or(s3s::S3ErrorCode::InvalidRequest);
    let mut e = s3s::S3Error::with_message(code, message);
    e.set_status_code(status);
    e
}

/// The body length a request declares: `x-amz-decoded-content-length` for aws-chunked bodies,
/// else `Content-Length`. None for a body of unknown length.
pub(crate) fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    let parse = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<u64>().ok();
    parse("x-amz-decoded-content-length").or_else(|| parse("content-length"))
}

/// The storage class a request asks for (`STANDARD` without the header); the store refuses
/// classes it does not have.
pub(crate) fn storage_class(class: Option<&s3s::dto::StorageClass>) -> &str {
    class.map_or(cairn::STANDARD, |c| c.as_str())
}

/// The `x-amz-storage-class` a GET or HEAD answers: absent for `STANDARD`, as on AWS.
pub(crate) fn class_header(class: &str) -> Option<s3s::dto::StorageClass> {
    (class != cairn::STANDARD).then(|| s3s::dto::StorageClass::from(class.to_string()))
}
