//! [`Store`]: multipart uploads — starting one in a storage class, committing its parts,
//! completing and abandoning it, listing parts and uploads.

use cairn_meta::{Command, PartRecord, Response, UploadRecord};
use cairn_meta_client::InBucket;

use crate::api::{Object, Part, Upload};
use crate::store::{now_millis, BucketGuard, PutConditions};
use crate::write::Staged;
use crate::{Checksums, Error, ObjectAttrs, Result, Store};

impl Store {
    /// Starts a multipart upload of storage class `storage_class` (stage its parts in it)
    /// and returns its id. An unknown class is [`Error::InvalidStorageClass`].
    pub async fn create_upload(
        &self,
        bucket: &BucketGuard,
        key: &str,
        attrs: ObjectAttrs,
        checksum_algorithm: Option<String>,
        owner: &str,
        storage_class: &str,
    ) -> Result<Upload> {
        let (storage_class, _) = self.inner.class(storage_class)?;
        let upload = UploadRecord {
            upload_id: uuid::Uuid::new_v4().simple().to_string(),
            bucket: bucket.name.clone(),
            key: key.into(),
            initiated: now_millis(),
            attrs,
            checksum_algorithm,
            owner: owner.into(),
            storage_class,
        };
        self.propose(bucket.wrap(Command::CreateUpload { upload: upload.clone() }))
            .await?;
        Ok(upload.into())
    }

    /// An upload, or `NoSuchUpload` (`NoSuchBucket` if the bucket is gone).
    pub async fn upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Upload> {
        match self.inner.meta.upload(bucket, key, upload_id).await? {
            InBucket::NoBucket => Err(Error::NoSuchBucket),
            InBucket::Absent => Err(Error::NoSuchUpload),
            InBucket::Found(u) => Ok(u.into()),
        }
    }

    /// Commits staged data as part `number` of an upload, replacing an earlier upload of it.
    pub async fn commit_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        staged: Staged,
        checksums: Checksums,
    ) -> Result<Part> {
        let scheme = staged.scheme();
        let part = PartRecord {
            number,
            size: staged.size,
            etag: staged.md5_hex(),
            last_modified: now_millis(),
            body: staged.body,
            checksums,
        };
        let command = Command::PutPart {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            part: part.clone(),
            written: staged.written,
            scheme,
        };
        self.propose_fenced(command, &staged.staging.staging).await?;
        Ok(part.into())
    }

    /// Completes an upload from the listed (part number, ETag) pairs.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<(u32, String)>,
        conditions: PutConditions,
    ) -> Result<Object> {
        let r = self
            .propose(Command::CompleteUpload {
                bucket: bucket.into(),
                key: key.into(),
                upload_id: upload_id.into(),
                parts,
                version_id: uuid::Uuid::now_v7().simple().to_string(),
                last_modified: now_millis(),
                if_none_match: conditions.if_none_match,
                min_part_size: self.inner.config.min_part_size,
            })
            .await?;
        match r {
            Response::Object(o) => Ok((*o).into()),
            other => Err(Error::Storage(format!("unexpected response {other:?}"))),
        }
    }

    /// Abandons an upload and drops its parts.
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.propose(Command::AbortUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
        })
        .await
        .map(drop)
    }

    /// Parts of an upload numbered above `after`, at most `limit`.
    pub async fn parts(&self, upload_id: &str, after: u32, limit: usize) -> Result<Vec<Part>> {
        Ok(self
            .inner
            .meta
            .parts(upload_id, after, limit)
            .await?
            .into_iter()
            .map(Part::from)
            .collect())
    }

    /// In-progress uploads of a bucket, in (key, upload id) order.
    pub async fn uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_id_marker: &str,
        limit: usize,
    ) -> Result<Vec<Upload>> {
        Ok(self
            .inner
            .meta
            .uploads(bucket, prefix, key_marker, upload_id_marker, limit)
            .await?
            .into_iter()
            .map(Upload::from)
            .collect())
    }
}
