//! Browser-form uploads (POST Object), streamed into the data path like a PUT.
//!
//! s3s reads a form's fields and then buffers its whole file before any handler runs; this
//! module serves form POSTs in front of s3s instead:
//! 1. the fields preceding the file are read, at most [`MAX_FIELD_BYTES`] of them (AWS:
//!    `MaxPostPreDataLengthExceeded`) within [`PostObject::fields_timeout`], and the parser may
//!    pull at most [`PRE_AUTH_BYTES`] of the body before the form is authenticated;
//! 2. the policy's signature, expiration and conditions, and the caller's right to write the
//!    bucket, are checked ([`crate::form_auth`]) — a form that fails is answered before its file
//!    is read;
//! 3. the file part streams into [`cairn::Store::stage_sized`], bounded by the policy's
//!    `content-length-range`, `post_object_max_bytes` and 5 GiB, then commits like a PUT.
//!
//! The parser never buffers more than [`STEP_BYTES`] of file between two chunks it hands on (the
//! body stream yields after that many bytes), so a form upload holds what a PUT holds plus that.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn::PutConditions;
use futures::{Stream, TryStreamExt};
use http::{HeaderValue, Response, StatusCode};
use s3s::dto::{Timestamp, TimestampFormat};
use s3s::host::S3Host;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

use crate::auth::CairnAuth;
use crate::checksum::BodyCheck;
use crate::error::S3ResultExt;
use crate::form_auth::{authenticate, FormFields};
use crate::{util, CairnS3, DomainHost};

/// Most bytes of field names and values before the file (AWS limits the policy to 20 KB).
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most fields before the file.
const MAX_FIELDS: usize = 64;
/// Most body bytes the parser may pull before the form is authenticated: the fields, their
/// part headers, and what arrives with the file part's head.
const PRE_AUTH_BYTES: u64 = 512 * 1024;
/// The body stream yields to the parser after this many bytes in one go.
const STEP_BYTES: usize = 128 * 1024;

/// Default for [`PostObject::fields_timeout`].
const DEFAULT_FIELDS_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves browser-form uploads for one S3 front end.
#[derive(Clone)]
pub struct PostObject {
    s3: CairnS3,
    auth: Arc<CairnAuth>,
    host: Option<DomainHost>,
    fields_timeout: Duration,
}

/// The request body, as the form parser pulls it.
struct FormBody {
    inner: s3s::Body,
    read: u64,
    /// Bytes the parser may pull in all; raised once the form is authenticated.
    allowance: Arc<AtomicU64>,
    since_yield: usize,
}

/// The parser pulled more than [`PRE_AUTH_BYTES`] before the form was authenticated.
#[derive(Debug)]
struct TooMuchBeforeAuth;

impl std::fmt::Display for TooMuchBeforeAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("form fields preceding the file are too large")
    }
}

impl std::error::Error for TooMuchBeforeAuth {}

impl Stream for FormBody {
    type Item = Result<Bytes, s3s::StdError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.since_yield >= STEP_BYTES {
            // The parser appends everything a stream yields in one go to its buffer: hand what
            // it has on before it pulls more.
            self.since_yield = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.read += b.len() as u64;
                if self.read > self.allowance.load(Ordering::Acquire) {
                    return Poll::Ready(Some(Err(Box::new(TooMuchBeforeAuth))));
                }
                self.since_yield += b.len();
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Pending => {
                self.since_yield = 0;
                Poll::Pending
            }
            other => other,
        }
    }
}

/// A parser error as S3's: too much before the file, or a malformed form.
fn form_error(e: multer::Error) -> S3Error {
    if let multer::Error::StreamReadFailed(inner) = &e {
        if inner.is::<TooMuchBeforeAuth>() {
            return too_much_before_file();
        }
        return s3_error!(IncompleteBody, "the form's body could not be read: {inner}");
    }
    s3_error!(
        MalformedPOSTRequest,
        "The body of your POST request is not well-formed multipart/form-data: {e}"
    )
}

fn too_much_before_file() -> S3Error {
    util::custom_error(
        "MaxPostPreDataLengthExceeded",
        StatusCode::BAD_REQUEST,
        "Your POST request fields preceding the upload file were too large.",
    )
}

impl PostObject {
    pub(crate) fn new(s3: CairnS3, auth: Arc<CairnAuth>, host: Option<DomainHost>) -> Self {
        Self {
            s3,
            auth,
            host,
            fields_timeout: DEFAULT_FIELDS_TIMEOUT,
        }
    }

    /// How long a form's fields, which are read before it is authenticated, may take to arrive
    /// (as a request head must); then the client gets `400 RequestTimeout`. Default 20 s.
    pub fn fields_timeout(mut self, timeout: Duration) -> Self {
        self.fields_timeout = timeout;
        self
    }

    /// Serves a form POST (`multipart/form-data`) to a bucket: the object is stored, or the
    /// client gets S3's error document. Never reads the file of a form that fails its checks.
    pub async fn handle(&self, req: http::Request<s3s::Body>) -> Response<s3s::Body> {
        match self.upload(req).await {
            Ok(resp) => resp,
            Err(e) => e.to_http_response().unwrap_or_else(|_| {
                let mut r = Response::new(s3s::Body::empty());
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }),
        }
    }

    /// The bucket a form is posted to: the virtual host's, or the path's (`/bucket`).
    fn bucket_of(&self, req: &http::Request<s3s::Body>) -> S3Result<(String, bool)> {
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok());
        let vh_bucket = match (&self.host, host) {
            (Some(d), Some(h)) => d.parse_host_header(h)?.bucket().map(str::to_string),
            _ => None,
        };
        let virtual_host = vh_bucket.is_some();
        let path = match &vh_bucket {
            Some(b) => s3s::path::parse_virtual_hosted_style(Some(b), req.uri().path()),
            None => s3s::path::parse_path_style(req.uri().path()),
        }
        .map_err(|_| s3_error!(InvalidBucketName))?;
        match path {
            s3s::path::S3Path::Bucket { bucket } => Ok((bucket.to_string(), virtual_host)),
            _ => Err(s3_error!(MethodNotAllowed, "a form upload is posted to a bucket")),
        }
    }

    async fn upload(&self, req: http::Request<s3s::Body>) -> S3Result<Response<s3s::Body>> {
        let (bucket, virtual_host) = self.bucket_of(&req)?;
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| s3_error!(MalformedPOSTRequest, "the form has no multipart boundary"))?;
        let host = req.headers().get(http::header::HOST).cloned();
        let allowance = Arc::new(AtomicU64::new(PRE_AUTH_BYTES));
        let body = FormBody {
            inner: req.into_body(),
            read: 0,
            allowance: allowance.clone(),
            since_yield: 0,
        };
        let mut form = multer::Multipart::new(body, boundary);
        let (fields, file) = tokio::time::timeout(self.fields_timeout, read_fields(&mut form))
            .await
            .map_err(|_| {
                s3_error!(
                    RequestTimeout,
                    "Your socket connection to the server was not read from or written to within the timeout period."
                )
            })??;

        let signed = authenticate(
            &self.auth,
            &self.s3.settings.region,
            &bucket,
            &fields,
            time::OffsetDateTime::now_utc(),
        )
        .await?;
        let guard = crate::auth::writable_bucket(&self.s3, &signed.access_key, &bucket).await?;
        let key = fields
            .get("key")
            .ok_or_else(|| s3_error!(InvalidArgument, "Bucket POST must contain a field named 'key'"))?
            .replace("${filename}", file.file_name().unwrap_or(""));
        util::check_key(&key)?;
        let attrs = attrs(&fields)?;
        let mut check = body_check(&fields)?;
        let (min, max) = signed.length_range.unwrap_or((0, u64::MAX));
        let max = max
            .min(self.s3.settings.post_object_max_bytes)
            .min(cairn_types::limits::MAX_PART_SIZE);

        // Authenticated: the file may flow.
        allowance.store(u64::MAX, Ordering::Release);
        let file = file.inspect_ok(|b| check.update(b));
        let class = fields.get("x-amz-storage-class").unwrap_or(cairn::STANDARD).to_string();
        let staged = self.s3.store.stage_sized(&class, file, max, true, None).await.s3()?;
        if staged.size() < min {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed size"
            ));
        }
        let checksums = check.finish(staged.md5(), staged.size(), None)?;
        let object = self
            .s3
            .store
            .commit_object(
                &guard,
                &key,
                staged,
                attrs,
                checksums,
                &signed.access_key,
                PutConditions::default(),
            )
            .await
            .s3()?;
        metrics::counter!("cairn_s3_put_bytes_total").increment(object.size);
        let etag = format!("\"{}\"", object.etag);
        let location = location(host.as_ref(), &bucket, &key, virtual_host);
        Ok(success(&fields, &bucket, &key, &etag, &location))
    }
}

/// Reads the fields up to the file part, which it returns unread.
async fn read_fields(form: &mut multer::Multipart<'static>) -> S3Result<(FormFields, multer::Field<'static>)> {
    let mut fields = FormFields::default();
    let mut bytes = 0usize;
    let mut count = 0usize;
    loop {
        let Some(mut field) = form.next_field().await.map_err(form_error)? else {
            return Err(S3Error::with_message(
                S3ErrorCode::IncorrectNumberOfFilesInPostRequest,
                "POST requires exactly one file upload per request.",
            ));
        };
        let name = field.name().unwrap_or("").to_string();
        if name.eq_ignore_ascii_case("file") {
            return Ok((fields, field));
        }
        count += 1;
        bytes += name.len();
        let mut value = Vec::new();
        loop {
            if bytes > MAX_FIELD_BYTES || count > MAX_FIELDS {
                return Err(too_much_before_file());
            }
            let Some(chunk) = field.chunk().await.map_err(form_error)? else {
                break;
            };
            bytes += chunk.len();
            value.extend_from_slice(&chunk);
        }
        let value =
            String::from_utf8(value).map_err(|_| s3_error!(InvalidArgument, "the form field {name} is not UTF-8"))?;
        fields.push(&name, value)?;
    }
}

/// The object's attributes from the form's header-like fields.
fn attrs(fields: &FormFields) -> S3Result<cairn::ObjectAttrs> {
    let text = |name: &str| fields.get(name).map(str::to_string);
    let expires = match fields.get("expires") {
        None => None,
        Some(s) => Some(
            Timestamp::parse(TimestampFormat::HttpDate, s)
                .map_err(|_| s3_error!(InvalidArgument, "the Expires field is not an HTTP date"))?,
        ),
    };
    let metadata: s3s::dto::Metadata = fields
        .iter()
        .filter_map(|(n, v)| Some((n.strip_prefix("x-amz-meta-")?.to_string(), v.to_string())))
        .collect();
    util::attrs(
        text("content-type"),
        text("content-disposition"),
        text("content-encoding"),
        text("content-language"),
        text("cache-control"),
        expires,
        (!metadata.is_empty()).then_some(metadata),
    )
}

/// The checks the form asks of the file: `Content-MD5` and `x-amz-checksum-*` fields.
fn body_check(fields: &FormFields) -> S3Result<BodyCheck> {
    let text = |name: &str| fields.get(name).map(str::to_string);
    let algorithm = fields
        .get("x-amz-checksum-algorithm")
        .map(|a| s3s::dto::ChecksumAlgorithm::from(a.to_ascii_uppercase()));
    BodyCheck::new(
        &http::HeaderMap::new(),
        algorithm.as_ref(),
        cairn::Checksums {
            crc32: text("x-amz-checksum-crc32"),
            crc32c: text("x-amz-checksum-crc32c"),
            sha1: text("x-amz-checksum-sha1"),
            sha256: text("x-amz-checksum-sha256"),
            crc64nvme: text("x-amz-checksum-crc64nvme"),
        },
        fields.get("content-md5"),
    )
}

/// The object's URL, as AWS puts it in `Location`.
fn location(host: Option<&HeaderValue>, bucket: &str, key: &str, virtual_host: bool) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let host = host.and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let key = percent_encoding::utf8_percent_encode(key, KEEP);
    if virtual_host {
        format!("http://{host}/{key}")
    } else {
        format!("http://{host}/{bucket}/{key}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The answer AWS gives: a 303 to `success_action_redirect`, or `success_action_status`
/// (200, 201 with a `PostResponse` document, or 204 by default).
fn success(fields: &FormFields, bucket: &str, key: &str, etag: &str, location: &str) -> Response<s3s::Body> {
    let redirect = fields
        .get("success_action_redirect")
        .or_else(|| fields.get("redirect"))
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"));
    let mut resp = Response::new(s3s::Body::empty());
    if let Some(url) = redirect {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        let sep = if url.contains('?') { '&' } else { '?' };
        let target = format!("{url}{sep}bucket={}&key={}&etag={}", enc(bucket), enc(key), enc(etag));
        if let Ok(v) = HeaderValue::from_str(&target) {
            *resp.status_mut() = StatusCode::SEE_OTHER;
            resp.headers_mut().insert(http::header::LOCATION, v);
            return with_etag(resp, etag);
        }
    }
    match fields.get("success_action_status") {
        Some("200") => *resp.status_mut() = StatusCode::OK,
        Some("201") => {
            *resp.status_mut() = StatusCode::CREATED;
            *resp.body_mut() = s3s::Body::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location>\
                 <Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                escape(location),
                escape(bucket),
                escape(key),
                escape(etag)
            ));
            resp.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        }
        _ => *resp.status_mut() = StatusCode::NO_CONTENT,
    }
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    with_etag(resp, etag)
}

fn with_etag(mut resp: Response<s3s::Body>, etag: &str) -> Response<s3s::Body> {
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(http::header::ETAG, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> FormFields {
        FormFields::from_pairs(pairs)
    }

    #[test]
    fn the_answer_follows_the_success_fields() {
        let loc = "http://h/b/k";
        let r = success(&fields(&[]), "b", "k", "\"e\"", loc);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["etag"], "\"e\"");
        assert_eq!(r.headers()["location"], loc);
        let r = success(&fields(&[("success_action_status", "201")]), "b", "a<b", "\"e\"", loc);
        assert_eq!(r.status(), StatusCode::CREATED);
        let body = r.into_body().bytes().unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        assert!(body.contains("<Key>a&lt;b</Key>"), "{body}");
        let r = success(
            &fields(&[("success_action_redirect", "https://app/done?x=1")]),
            "b",
            "a b",
            "\"e\"",
            loc,
        );
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()["location"],
            "https://app/done?x=1&bucket=b&key=a%20b&etag=%22e%22"
        );
        let r = success(
            &fields(&[("success_action_redirect", "javascript:x")]),
            "b",
            "k",
            "\"e\"",
            loc,
        );
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "only http(s) redirects");
    }

    #[test]
    fn locations_escape_the_key() {
        let h = HeaderValue::from_static("s3.test:9000");
        assert_eq!(location(Some(&h), "b", "a b/c", false), "http://s3.test:9000/b/a%20b/c");
        assert_eq!(location(Some(&h), "b", "k", true), "http://s3.test:9000/k");
    }
}
