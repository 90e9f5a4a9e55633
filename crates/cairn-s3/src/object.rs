//! Object operations: PUT, GET, HEAD, DELETE, DeleteObjects, CopyObject.

use bytes::Bytes;
use cairn::{Checksums, Object, PutConditions};
use futures::{stream, StreamExt, TryStreamExt};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::auth::may_access;
use crate::checksum::BodyCheck;
use crate::error::{to_s3, S3ResultExt};
use crate::util::{self, caller, check_key, check_preconditions, custom_error, etag, timestamp};
use crate::CairnS3;

/// Largest single PUT, as AWS (5 GiB).
const MAX_PUT: u64 = cairn_types::limits::MAX_PART_SIZE;

pub(crate) type Body = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, s3s::StdError>> + Send>>;

/// The request body as a stream (an absent body is an empty one).
pub(crate) fn body_stream(body: Option<StreamingBlob>) -> Body {
    match body {
        Some(b) => Box::pin(b),
        None => Box::pin(stream::empty()),
    }
}

fn given_checksums(
    crc32: Option<String>,
    crc32c: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
    crc64nvme: Option<String>,
) -> Checksums {
    Checksums {
        crc32,
        crc32c,
        sha1,
        sha256,
        crc64nvme,
    }
}

pub(crate) async fn put_object(s3: &CairnS3, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let who = caller(&req)?;
    let input = req.input;
    check_key(&input.key)?;
    let attrs = util::attrs(
        input.content_type,
        input.content_disposition,
        input.content_encoding,
        input.content_language,
        input.cache_control,
        input.expires,
        input.metadata,
    )?;
    let conditions = PutConditions {
        if_none_match: match &input.if_none_match {
            None => false,
            Some(ETagCondition::Any) => true,
            Some(_) => return Err(s3_error!(NotImplemented, "If-None-Match on PUT supports only '*'")),
        },
        if_match: match &input.if_match {
            None => None,
            Some(ETagCondition::Any) => Some("*".into()),
            Some(ETagCondition::ETag(e)) => Some(e.value().to_string()),
        },
    };
    // Fail fast on a missing bucket, before reading the body; the commit is bound to it.
    let bucket = crate::auth::writable_bucket(s3, &who, &input.bucket).await?;
    let mut check = BodyCheck::new(
        &req.headers,
        input.checksum_algorithm.as_ref(),
        given_checksums(
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_sha1,
            input.checksum_sha256,
            input.checksum_crc64nvme,
        ),
        input.content_md5.as_deref(),
    )?;
    // A browser-form POST's headers describe the whole form, not the file.
    let declared = (req.method == http::Method::PUT)
        .then(|| util::declared_length(&req.headers))
        .flatten();
    let body = body_stream(input.body).inspect_ok(|b| check.update(b));
    let class = util::storage_class(input.storage_class.as_ref());
    let staged = s3.store.stage_sized(class, body, MAX_PUT, true, declared).await.s3()?;
    let checksums = check.finish(staged.md5(), staged.size(), req.trailing_headers.as_ref())?;
    let object = s3
        .store
        .commit_object(&bucket, &input.key, staged, attrs, checksums.clone(), &who, conditions)
        .await
        .s3()?;
    metrics::counter!("cairn_s3_put_bytes_total").increment(object.size);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&object)),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_crc64nvme: checksums.crc64nvme,
        ..Default::default()
    }))
}

/// The byte range a GET or HEAD asks for, and its Content-Range.
async fn select_range(
    s3: &CairnS3,
    o: &Object,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> S3Result<(std::ops::Range<u64>, Option<String>)> {
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(s3_error!(InvalidRequest, "cannot specify both Range and partNumber"));
        }
        let extent = match u32::try_from(n) {
            _ if o.part_count() == 0 => (n == 1).then_some((0, o.size)),
            Ok(n) => s3.store.part_extent(o, n).await.s3()?.map(|p| (p.offset, p.size)),
            Err(_) => None,
        };
        let (start, size) = extent.ok_or_else(|| {
            custom_error(
                "InvalidPartNumber",
                http::StatusCode::RANGE_NOT_SATISFIABLE,
                "the requested partnumber is not satisfiable",
            )
        })?;
        let cr = (o.part_count() > 0 && size > 0).then(|| format!("bytes {}-{}/{}", start, start + size - 1, o.size));
        return Ok((start..start + size, cr));
    }
    match range {
        None => Ok((0..o.size, None)),
        Some(r) => {
            let r = r.check(o.size).map_err(|_| s3_error!(InvalidRange))?;
            if r.is_empty() {
                // Only a suffix range of an empty object: AWS answers 200 with the (empty)
                // whole object, not a 206 with an impossible Content-Range.
                return Ok((0..0, None));
            }
            let cr = format!("bytes {}-{}/{}", r.start, r.end - 1, o.size);
            Ok((r, Some(cr)))
        }
    }
}

fn wants_checksum(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case("ENABLED"))
}

/// What GET and HEAD share: the conditions and range of the request.
struct ReadRequest<'a> {
    bucket: &'a str,
    key: &'a str,
    if_match: Option<&'a ETagCondition>,
    if_unmodified_since: Option<&'a Timestamp>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    range: Option<&'a Range>,
    part_number: Option<i32>,
    checksum_mode: Option<&'a ChecksumMode>,
}

/// The bytes to serve and the headers that depend on them.
struct ReadPlan {
    range: std::ops::Range<u64>,
    content_range: Option<String>,
    checksums: Checksums,
}

/// Reads the object, checks the preconditions, and selects the range (S3 returns the stored
/// checksums only for whole-object reads that ask for them).
async fn plan_read(s3: &CairnS3, r: ReadRequest<'_>) -> S3Result<(Object, ReadPlan)> {
    let o = s3.store.object(r.bucket, r.key).await.s3()?;
    check_preconditions(
        &o,
        r.if_match,
        r.if_unmodified_since,
        r.if_none_match,
        r.if_modified_since,
        false,
    )?;
    let (range, content_range) = select_range(s3, &o, r.range, r.part_number).await?;
    let whole = range.start == 0 && range.end == o.size;
    let checksums = if whole && wants_checksum(r.checksum_mode) {
        o.checksums.clone()
    } else {
        Checksums::default()
    };
    Ok((
        o,
        ReadPlan {
            range,
            content_range,
            checksums,
        },
    ))
}

pub(crate) async fn get_object(s3: &CairnS3, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    let (o, plan) = plan_read(
        s3,
        ReadRequest {
            bucket: &input.bucket,
            key: &input.key,
            if_match: input.if_match.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            range: input.range.as_ref(),
            part_number: input.part_number,
            checksum_mode: input.checksum_mode.as_ref(),
        },
    )
    .await?;
    let (content_range, checksums) = (plan.content_range, plan.checksums);
    let length = plan.range.end - plan.range.start;
    let mut body = s3.store.read(&o, plan.range);
    // The first bytes are read before the head is sent, so that a chunk that cannot be read
    // (too many shards lost) or no room in the memory budget is an error status (500, 503),
    // not a 200 whose body breaks off. Later failures can only cut the body.
    let first = body.next().await.transpose().map_err(to_s3)?;
    let body = stream::iter(first.map(Ok)).chain(body).map_err(|e| {
        tracing::error!(error = %e, "read failed mid-stream");
        std::io::Error::other(e.to_string())
    });
    metrics::counter!("cairn_s3_get_bytes_total").increment(length);
    let a = &o.attrs;
    Ok(S3Response::new(GetObjectOutput {
        // s3s wants a Sync stream; the wrapper is sound because a stream is only ever polled
        // through an exclusive reference.
        body: Some(StreamingBlob::wrap(sync_wrapper::SyncStream::new(body))),
        content_length: Some(length as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        e_tag: Some(etag(&o)),
        last_modified: Some(timestamp(o.last_modified)),
        metadata: util::metadata(a),
        content_type: input.response_content_type.or_else(|| a.content_type.clone()),
        content_disposition: input
            .response_content_disposition
            .or_else(|| a.content_disposition.clone()),
        content_encoding: input.response_content_encoding.or_else(|| a.content_encoding.clone()),
        content_language: input.response_content_language.or_else(|| a.content_language.clone()),
        cache_control: input.response_cache_control.or_else(|| a.cache_control.clone()),
        expires: input.response_expires.or_else(|| util::expires(a)),
        parts_count: (o.part_count() > 0 && input.part_number.is_some()).then_some(o.part_count() as i32),
        storage_class: util::class_header(&o.storage_class),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_crc64nvme: checksums.crc64nvme,
        ..Default::default()
    }))
}

pub(crate) async fn head_object(
    s3: &CairnS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let (o, plan) = plan_read(
        s3,
        ReadRequest {
            bucket: &input.bucket,
            key: &input.key,
            if_match: input.if_match.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            range: input.range.as_ref(),
            part_number: input.part_number,
            checksum_mode: input.checksum_mode.as_ref(),
        },
    )
    .await?;
    let (range, content_range, checksums) = (plan.range, plan.content_range, plan.checksums);
    let a = &o.attrs;
    Ok(S3Response::new(HeadObjectOutput {
        content_length: Some((range.end - range.start) as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        e_tag: Some(etag(&o)),
        last_modified: Some(timestamp(o.last_modified)),
        metadata: util::metadata(a),
        content_type: a.content_type.clone(),
        content_disposition: a.content_disposition.clone(),
        content_encoding: a.content_encoding.clone(),
        content_language: a.content_language.clone(),
        cache_control: a.cache_control.clone(),
        expires: util::expires(a),
        parts_count: (o.part_count() > 0 && input.part_number.is_some()).then_some(o.part_count() as i32),
        storage_class: util::class_header(&o.storage_class),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_crc64nvme: checksums.crc64nvme,
        ..Default::default()
    }))
}

pub(crate) async fn delete_object(
    s3: &CairnS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    s3.store.delete_objects(&input.bucket, vec![input.key]).await.s3()?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub(crate) async fn delete_objects(
    s3: &CairnS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    let objects = input.delete.objects;
    if objects.len() > cairn_types::limits::MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "a DeleteObjects request may name at most 1000 keys"
        ));
    }
    if objects.is_empty() {
        return Err(s3_error!(MalformedXML, "no keys to delete"));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let (valid, invalid): (Vec<_>, Vec<_>) = objects.into_iter().partition(|o| check_key(&o.key).is_ok());
    let keys: Vec<String> = valid.iter().map(|o| o.key.clone()).collect();
    s3.store.delete_objects(&input.bucket, keys.clone()).await.s3()?;
    let deleted = (!quiet).then(|| {
        keys.into_iter()
            .map(|k| DeletedObject {
                key: Some(k),
                ..Default::default()
            })
            .collect()
    });
    let errors: Vec<Error> = invalid
        .into_iter()
        .map(|o| Error {
            code: Some("KeyTooLongError".into()),
            key: Some(o.key),
            message: Some("invalid key".into()),
            version_id: None,
        })
        .collect();
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted,
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

/// The `x-amz-copy-source-if-*` conditions of a copy.
pub(crate) struct CopyConditions<'a> {
    pub(crate) if_match: Option<&'a ETagCondition>,
    pub(crate) if_unmodified_since: Option<&'a Timestamp>,
    pub(crate) if_none_match: Option<&'a ETagCondition>,
    pub(crate) if_modified_since: Option<&'a Timestamp>,
}

/// Resolves the source of a CopyObject or UploadPartCopy: its bucket and key, the caller's
/// access to that bucket (the path check only saw the destination), the current version, and
/// the copy-source conditions (412 when one fails).
pub(crate) async fn read_copy_source(
    s3: &CairnS3,
    who: &str,
    src: &CopySource,
    c: CopyConditions<'_>,
) -> S3Result<(String, String, Object)> {
    let (bucket, key) = match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(s3_error!(NoSuchVersion, "versioning is not supported yet"));
            }
            (bucket.to_string(), key.to_string())
        }
        _ => return Err(s3_error!(NotImplemented, "only bucket/key copy sources are supported")),
    };
    may_access(s3, who, &bucket).await?;
    let o = s3.store.object(&bucket, &key).await.s3()?;
    check_preconditions(
        &o,
        c.if_match,
        c.if_unmodified_since,
        c.if_none_match,
        c.if_modified_since,
        true,
    )?;
    Ok((bucket, key, o))
}

/// Times a copy is retried when its source is replaced during the copy.
const COPY_ATTEMPTS: u32 = 3;

pub(crate) async fn copy_object(
    s3: &CairnS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let who = caller(&req)?;
    let input = req.input;
    check_key(&input.key)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str().eq_ignore_ascii_case("REPLACE"));
    let attrs = if replace {
        Some(util::attrs(
            input.content_type,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.cache_control,
            input.expires,
            input.metadata,
        )?)
    } else {
        None
    };
    // The copy is committed only if the source is still the version whose conditions were
    // checked; if another write replaced it meanwhile, read and check it again.
    let mut attempts = 0;
    let o = loop {
        let (src_bucket, src_key, src) = read_copy_source(
            s3,
            &who,
            &input.copy_source,
            CopyConditions {
                if_match: input.copy_source_if_match.as_ref(),
                if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
                if_none_match: input.copy_source_if_none_match.as_ref(),
                if_modified_since: input.copy_source_if_modified_since.as_ref(),
            },
        )
        .await?;
        // Without the header the copy is STANDARD, as on AWS.
        let class = util::storage_class(input.storage_class.as_ref());
        if !replace && src_bucket == input.bucket && src_key == input.key && class == src.storage_class {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let bucket = crate::auth::writable_bucket(s3, &who, &input.bucket).await?;
        if class != src.storage_class {
            // Another class is another redundancy: the bytes are written again in it.
            let staged = s3.store.stage_copy(class, &src, 0..src.size, MAX_PUT).await.s3()?;
            let attrs = attrs.clone().unwrap_or_else(|| src.attrs.clone());
            // The copy's bytes are the source's, so are its whole-object checksums; a multipart
            // source's are composites of its parts, which the copy (one part) has not.
            let checksums = if src.part_count() == 0 {
                src.checksums.clone()
            } else {
                Checksums::default()
            };
            break s3
                .store
                .commit_object(
                    &bucket,
                    &input.key,
                    staged,
                    attrs,
                    checksums,
                    &who,
                    PutConditions::default(),
                )
                .await
                .s3()?;
        }
        match s3
            .store
            .copy_object(&src_bucket, &src_key, &src, &bucket, &input.key, attrs.clone(), &who)
            .await
        {
            Err(cairn::Error::SourceChanged) if attempts < COPY_ATTEMPTS => attempts += 1,
            r => break r.map_err(to_s3)?,
        }
    };
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&o)),
            last_modified: Some(timestamp(o.last_modified)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
