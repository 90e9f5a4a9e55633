//! The S3 protocol over the [`cairn`] API.
//!
//! Owns: the `s3s` service (routing, XML, SigV4 including presigned URLs and aws-chunked
//! streaming with trailers), authentication against the keys in the metadata, the bucket
//! ownership check, S3's limits and conditional requests, request checksums, and the one
//! mapping of [`cairn::Error`] to S3 error codes ([`error`]).
//!
//! Invariants: every request is authenticated (anonymous requests are denied); a client's
//! mistake gets a 4xx with S3's code and an XML body, never a 500; nothing is visible until
//! every checksum the client sent has been verified.
//!
//! Must not depend on: RocksDB, tonic, placement. It sees only the `cairn` API.

mod auth;
mod bucket;
mod checksum;
mod error;
mod form_auth;
mod host;
mod list;
mod multipart;
mod object;
mod post_object;
mod screen;
mod util;

use std::sync::Arc;

use cairn::Store;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result, S3};

pub use auth::{CairnAccess, CairnAuth, RootCredentials};
pub use host::DomainHost;
pub use post_object::{PostObject, MAX_FIELD_BYTES};
pub use screen::{screen, Refusal, MAX_PRESIGN_EXPIRES};

/// Settings of the S3 front end.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// The region requests are signed for.
    pub region: String,
    /// Base domain for virtual-host-style requests (`bucket.DOMAIN`), if any.
    pub domain: Option<String>,
    /// The root credentials: full access to everything.
    pub root: RootCredentials,
    /// Largest file a browser-form POST may upload (the policy's `content-length-range` may
    /// lower it). The file streams like a PUT's body, so this is a policy, not a memory bound.
    pub post_object_max_bytes: u64,
}

/// Default for [`S3Settings::post_object_max_bytes`]: 5 GiB, the largest single PUT.
pub const DEFAULT_POST_OBJECT_MAX_BYTES: u64 = cairn_types::limits::MAX_PART_SIZE;

/// The S3 implementation: each operation delegates to its module.
#[derive(Clone)]
pub struct CairnS3 {
    pub(crate) store: Store,
    pub(crate) settings: Arc<S3Settings>,
}

/// The S3 front end: `s3` serves every request except browser-form uploads (POST of
/// `multipart/form-data`), which the server must hand to `post_object` instead.
pub struct Services {
    /// The s3s service: routing, SigV4, XML, every operation.
    pub s3: S3Service,
    /// Form uploads, streamed (s3s would buffer the whole file before any check).
    pub post_object: PostObject,
}

/// Whether a request is a browser-form upload, which [`Services::post_object`] serves.
pub fn is_form_upload<B>(req: &http::Request<B>) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Builds the S3 services for `store`: routing, authentication, access checks and limits.
pub fn build_service(store: Store, settings: S3Settings) -> Result<Services, String> {
    let settings = Arc::new(settings);
    let s3 = CairnS3 {
        store: store.clone(),
        settings: settings.clone(),
    };
    let host = settings.domain.as_deref().map(DomainHost::new).transpose()?;
    let post_object = PostObject::new(
        s3.clone(),
        Arc::new(CairnAuth::new(store.clone(), settings.root.clone())),
        host,
    );
    let mut b = S3ServiceBuilder::new(s3);
    b.set_auth(CairnAuth::new(store.clone(), settings.root.clone()));
    b.set_access(CairnAccess::new(
        store,
        settings.root.access_key.clone(),
        settings.region.clone(),
    ));
    if let Some(domain) = &settings.domain {
        b.set_host(DomainHost::new(domain)?);
    }
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = 2 * 1024 * 1024;
    // Browser-form POSTs go to `PostObject`; should one reach s3s anyway, s3s must not buffer
    // a file: it reads at most these bounds and refuses any file.
    config.form_max_field_size = 64 * 1024;
    config.form_max_fields_size = MAX_FIELD_BYTES;
    config.form_max_parts = 64;
    config.post_object_max_file_size = 0;
    b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config))));
    Ok(Services {
        s3: b.build(),
        post_object,
    })
}

#[async_trait::async_trait]
impl S3 for CairnS3 {
    async fn list_buckets(&self, req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(self, req).await
    }
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(self, req).await
    }
    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(self, req).await
    }
    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(self, req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::get_bucket_location(self, req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        bucket::get_bucket_versioning(self, req).await
    }
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        object::put_object(self, req).await
    }
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        object::get_object(self, req).await
    }
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        object::head_object(self, req).await
    }
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        object::delete_object(self, req).await
    }
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        object::delete_objects(self, req).await
    }
    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        object::copy_object(self, req).await
    }
    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_objects(self, req).await
    }
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_objects_v2(self, req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req).await
    }
    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req).await
    }
    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req).await
    }
}
