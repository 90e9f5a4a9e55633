//! ListObjects (v1) and ListObjectsV2, served from the ordered metadata index.

use base64::Engine;
use cairn::{ListPage, ListRequest};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::error::S3ResultExt;
use crate::util::{etag, timestamp};
use crate::CairnS3;

/// What `encoding-type=url` escapes: everything but unreserved characters and '/'.
const URL_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

struct Encoder(bool);

impl Encoder {
    fn new(t: Option<&EncodingType>) -> S3Result<Self> {
        match t {
            None => Ok(Self(false)),
            Some(t) if t.as_str().eq_ignore_ascii_case("url") => Ok(Self(true)),
            Some(_) => Err(s3_error!(
                InvalidArgument,
                "invalid encoding method specified in the request"
            )),
        }
    }
    fn enc(&self, s: String) -> String {
        if self.0 {
            utf8_percent_encode(&s, URL_ENCODE).to_string()
        } else {
            s
        }
    }
}

fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(cairn_types::limits::MAX_LIST_KEYS)),
    }
}

fn contents(page: &ListPage, e: &Encoder) -> Vec<Object> {
    page.objects
        .iter()
        .map(|(k, o)| Object {
            key: Some(e.enc(k.clone())),
            size: Some(o.size as i64),
            e_tag: Some(etag(o)),
            last_modified: Some(timestamp(o.last_modified)),
            storage_class: Some(ObjectStorageClass::from(o.storage_class.clone())),
            ..Default::default()
        })
        .collect()
}

fn prefixes(page: &ListPage, e: &Encoder) -> Option<Vec<CommonPrefix>> {
    (!page.common_prefixes.is_empty()).then(|| {
        page.common_prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(e.enc(p.clone())),
            })
            .collect()
    })
}

fn empty_to_none(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

pub(crate) async fn list_objects_v2(
    s3: &CairnS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let i = req.input;
    let enc = Encoder::new(i.encoding_type.as_ref())?;
    let max = max_keys(i.max_keys)?;
    let after = match i.continuation_token.as_deref() {
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token provided is incorrect"))?,
        ),
        None => empty_to_none(i.start_after.clone()),
    };
    let delimiter = empty_to_none(i.delimiter.clone());
    let prefix = i.prefix.clone().unwrap_or_default();
    let page = s3
        .store
        .list_objects(
            &i.bucket,
            ListRequest {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                after,
                max_keys: max,
            },
        )
        .await
        .s3()?;
    let next = page
        .truncated
        .then(|| {
            page.last
                .as_ref()
                .map(|l| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(l))
        })
        .flatten();
    let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: Some(enc.enc(prefix)),
        delimiter: delimiter.map(|d| enc.enc(d)),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        is_truncated: Some(page.truncated),
        continuation_token: i.continuation_token,
        next_continuation_token: next,
        start_after: i.start_after.map(|s| enc.enc(s)),
        encoding_type: i.encoding_type,
        contents: Some(contents(&page, &enc)),
        common_prefixes: prefixes(&page, &enc),
        ..Default::default()
    }))
}

pub(crate) async fn list_objects(
    s3: &CairnS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let i = req.input;
    let enc = Encoder::new(i.encoding_type.as_ref())?;
    let max = max_keys(i.max_keys)?;
    let delimiter = empty_to_none(i.delimiter.clone());
    let prefix = i.prefix.clone().unwrap_or_default();
    let page = s3
        .store
        .list_objects(
            &i.bucket,
            ListRequest {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                after: empty_to_none(i.marker.clone()),
                max_keys: max,
            },
        )
        .await
        .s3()?;
    let next_marker = page.truncated.then(|| page.last.clone()).flatten().map(|m| enc.enc(m));
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: Some(enc.enc(prefix)),
        delimiter: delimiter.map(|d| enc.enc(d)),
        marker: Some(enc.enc(i.marker.unwrap_or_default())),
        max_keys: Some(max as i32),
        is_truncated: Some(page.truncated),
        next_marker,
        encoding_type: i.encoding_type,
        contents: Some(contents(&page, &enc)),
        common_prefixes: prefixes(&page, &enc),
        ..Default::default()
    }))
}
