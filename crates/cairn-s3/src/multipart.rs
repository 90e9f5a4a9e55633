//! Multipart uploads.

use cairn::PutConditions;
use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::checksum::BodyCheck;
use crate::error::S3ResultExt;
use crate::object::{body_stream, read_copy_source, CopyConditions};
use crate::util::{self, caller, check_key, timestamp};
use crate::CairnS3;

fn part_number(n: i32) -> S3Result<u32> {
    if (cairn_types::limits::MIN_PART_NUMBER..=cairn_types::limits::MAX_PART_NUMBER).contains(&n) {
        Ok(n as u32)
    } else {
        Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ))
    }
}

pub(crate) async fn create(
    s3: &CairnS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let who = caller(&req)?;
    let i = req.input;
    check_key(&i.key)?;
    let attrs = util::attrs(
        i.content_type,
        i.content_disposition,
        i.content_encoding,
        i.content_language,
        i.cache_control,
        i.expires,
        i.metadata,
    )?;
    let algorithm = i.checksum_algorithm.as_ref().map(|a| a.as_str().to_string());
    let bucket = crate::auth::writable_bucket(s3, &who, &i.bucket).await?;
    let upload = s3
        .store
        .create_upload(
            &bucket,
            &i.key,
            attrs,
            algorithm,
            &who,
            util::storage_class(i.storage_class.as_ref()),
        )
        .await
        .s3()?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(upload.upload_id),
        checksum_algorithm: i.checksum_algorithm,
        ..Default::default()
    }))
}

pub(crate) async fn upload_part(
    s3: &CairnS3,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let i = req.input;
    let number = part_number(i.part_number)?;
    let upload = s3.store.upload(&i.bucket, &i.key, &i.upload_id).await.s3()?;
    // A part of an upload created with a checksum algorithm carries that checksum (computed
    // here if the client sent none), so the object's composite checksum can be made from them.
    let given_checksums = cairn::Checksums {
        crc32: i.checksum_crc32,
        crc32c: i.checksum_crc32c,
        sha1: i.checksum_sha1,
        sha256: i.checksum_sha256,
        crc64nvme: i.checksum_crc64nvme,
    };
    let given = crate::checksum::algorithm_of(&given_checksums)
        .or_else(|| i.checksum_algorithm.as_ref().map(|a| a.as_str().to_string()));
    let algorithm = match (given, upload.checksum_algorithm) {
        (Some(given), Some(wanted)) if !given.eq_ignore_ascii_case(&wanted) => {
            return Err(s3_error!(
                InvalidRequest,
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                wanted.to_ascii_lowercase(),
                given.to_ascii_lowercase()
            ))
        }
        (_, wanted) => i
            .checksum_algorithm
            .clone()
            .or_else(|| wanted.map(ChecksumAlgorithm::from)),
    };
    let mut check = BodyCheck::new(
        &req.headers,
        algorithm.as_ref(),
        given_checksums,
        i.content_md5.as_deref(),
    )?;
    let body = body_stream(i.body).inspect_ok(|b| check.update(b));
    let staged = s3
        .store
        .stage_sized(
            &upload.storage_class,
            body,
            cairn_types::limits::MAX_PART_SIZE,
            false,
            util::declared_length(&req.headers),
        )
        .await
        .s3()?;
    let checksums = check.finish(staged.md5(), staged.size(), req.trailing_headers.as_ref())?;
    let part = s3
        .store
        .commit_part(&i.bucket, &i.key, &i.upload_id, number, staged, checksums.clone())
        .await
        .s3()?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag)),
        checksum_crc32: checksums.crc32,
        checksum_crc32c: checksums.crc32c,
        checksum_sha1: checksums.sha1,
        checksum_sha256: checksums.sha256,
        checksum_crc64nvme: checksums.crc64nvme,
        ..Default::default()
    }))
}

/// Parses `bytes=first-last` of x-amz-copy-source-range.
fn copy_range(r: &str, size: u64) -> S3Result<std::ops::Range<u64>> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "the x-amz-copy-source-range value must be of the form bytes=first-last"
        )
    };
    let spec = r.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = a.parse().map_err(|_| bad())?;
    let last: u64 = b.parse().map_err(|_| bad())?;
    if first > last || last >= size {
        return Err(s3_error!(InvalidRange));
    }
    Ok(first..last + 1)
}

pub(crate) async fn upload_part_copy(
    s3: &CairnS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let who = caller(&req)?;
    let i = req.input;
    let number = part_number(i.part_number)?;
    let upload = s3.store.upload(&i.bucket, &i.key, &i.upload_id).await.s3()?;
    let (_, _, src) = read_copy_source(
        s3,
        &who,
        &i.copy_source,
        CopyConditions {
            if_match: i.copy_source_if_match.as_ref(),
            if_unmodified_since: i.copy_source_if_unmodified_since.as_ref(),
            if_none_match: i.copy_source_if_none_match.as_ref(),
            if_modified_since: i.copy_source_if_modified_since.as_ref(),
        },
    )
    .await?;
    let range = match i.copy_source_range.as_deref() {
        Some(r) => copy_range(r, src.size)?,
        None => 0..src.size,
    };
    // The bytes are read back and re-chunked; chunks identical to the source's are
    // deduplicated, so aligned copies store nothing new.
    let staged = s3
        .store
        .stage_copy(&upload.storage_class, &src, range, cairn_types::limits::MAX_PART_SIZE)
        .await
        .s3()?;
    let part = s3
        .store
        .commit_part(&i.bucket, &i.key, &i.upload_id, number, staged, Default::default())
        .await
        .s3()?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.last_modified)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub(crate) async fn complete(
    s3: &CairnS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let i = req.input;
    let listed = i
        .multipart_upload
        .and_then(|m| m.parts)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| s3_error!(MalformedXML, "the XML must list at least one part"))?;
    let mut parts = Vec::with_capacity(listed.len());
    let mut claims = Vec::new();
    for p in listed {
        let n = part_number(
            p.part_number
                .ok_or_else(|| s3_error!(MalformedXML, "a part has no PartNumber"))?,
        )?;
        let e = p.e_tag.ok_or_else(|| s3_error!(MalformedXML, "a part has no ETag"))?;
        parts.push((n, e.value().to_string()));
        let claimed = cairn::Checksums {
            crc32: p.checksum_crc32,
            crc32c: p.checksum_crc32c,
            sha1: p.checksum_sha1,
            sha256: p.checksum_sha256,
            crc64nvme: p.checksum_crc64nvme,
        };
        if claimed != cairn::Checksums::default() {
            claims.push((n, claimed));
        }
    }
    check_part_checksums(s3, &i.upload_id, &claims).await?;
    let conditions = PutConditions {
        if_none_match: matches!(i.if_none_match, Some(ETagCondition::Any)),
        if_match: None,
    };
    let o = s3
        .store
        .complete_upload(&i.bucket, &i.key, &i.upload_id, parts, conditions)
        .await
        .s3()?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        e_tag: Some(ETag::Strong(o.etag)),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        checksum_type: (o.checksums != cairn::Checksums::default())
            .then(|| ChecksumType::from_static(ChecksumType::COMPOSITE)),
        checksum_crc32: o.checksums.crc32,
        checksum_crc32c: o.checksums.crc32c,
        checksum_sha1: o.checksums.sha1,
        checksum_sha256: o.checksums.sha256,
        ..Default::default()
    }))
}

/// Checks the checksums a CompleteMultipartUpload lists for its parts against those the parts
/// were stored with: a listed checksum that differs (or names a checksum the part lacks) is
/// `InvalidPart`, as on AWS.
async fn check_part_checksums(s3: &CairnS3, upload_id: &str, claims: &[(u32, cairn::Checksums)]) -> S3Result<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let stored = s3
        .store
        .parts(upload_id, 0, cairn_types::limits::MAX_PART_NUMBER as usize)
        .await
        .s3()?;
    for (n, claimed) in claims {
        // Parts come in number order: a search, not a scan per listed part (10,000 × 10,000).
        let Ok(i) = stored.binary_search_by_key(n, |p| p.number) else {
            continue; // the Complete command reports the missing part
        };
        let part = &stored[i];
        if crate::checksum::contradicts(claimed, &part.checksums) {
            return Err(s3_error!(
                InvalidPart,
                "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
            ));
        }
    }
    Ok(())
}

pub(crate) async fn abort(
    s3: &CairnS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let i = req.input;
    s3.store.abort_upload(&i.bucket, &i.key, &i.upload_id).await.s3()?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(crate) async fn list_parts(s3: &CairnS3, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let i = req.input;
    let upload = s3.store.upload(&i.bucket, &i.key, &i.upload_id).await.s3()?;
    let max = match i.max_parts {
        None => 1000,
        Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-parts must not be negative")),
        Some(n) => (n as usize).min(1000),
    };
    let after = i.part_number_marker.unwrap_or(0).max(0) as u32;
    let mut parts = s3.store.parts(&i.upload_id, after, max + 1).await.s3()?;
    let truncated = parts.len() > max;
    parts.truncate(max);
    let next = parts.last().map(|p| p.number as i32);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: next,
        is_truncated: Some(truncated),
        checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
        storage_class: Some(StorageClass::from(upload.storage_class)),
        parts: Some(
            parts
                .into_iter()
                .map(|p| Part {
                    part_number: Some(p.number as i32),
                    size: Some(p.size as i64),
                    e_tag: Some(ETag::Strong(p.etag)),
                    last_modified: Some(timestamp(p.last_modified)),
                    checksum_crc32: p.checksums.crc32,
                    checksum_crc32c: p.checksums.crc32c,
                    checksum_sha1: p.checksums.sha1,
                    checksum_sha256: p.checksums.sha256,
                    checksum_crc64nvme: p.checksums.crc64nvme,
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub(crate) async fn list_uploads(
    s3: &CairnS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    s3.store.bucket(&i.bucket).await.s3()?;
    let max = match i.max_uploads {
        None => 1000,
        Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-uploads must not be negative")),
        Some(n) => (n as usize).min(1000),
    };
    let prefix = i.prefix.clone().unwrap_or_default();
    let mut uploads = s3
        .store
        .uploads(
            &i.bucket,
            &prefix,
            i.key_marker.as_deref().unwrap_or(""),
            i.upload_id_marker.as_deref().unwrap_or(""),
            max + 1,
        )
        .await
        .s3()?;
    let truncated = uploads.len() > max;
    uploads.truncate(max);
    let (next_key, next_id) = match uploads.last() {
        Some(u) if truncated => (Some(u.key.clone()), Some(u.upload_id.clone())),
        _ => (None, None),
    };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: Some(prefix),
        key_marker: i.key_marker,
        upload_id_marker: i.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        uploads: Some(
            uploads
                .into_iter()
                .map(|u| MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.upload_id),
                    initiated: Some(timestamp(u.initiated)),
                    storage_class: Some(StorageClass::from(u.storage_class)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
