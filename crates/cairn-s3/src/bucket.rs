//! Bucket operations.

use cairn_types::BucketName;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::error::S3ResultExt;
use crate::util::{caller, timestamp};
use crate::CairnS3;

pub(crate) async fn list_buckets(
    s3: &CairnS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let who = caller(&req)?;
    let is_root = who == s3.settings.root.access_key;
    let buckets = s3
        .store
        .buckets()
        .await
        .s3()?
        .into_iter()
        .filter(|b| is_root || b.owner == who)
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created)),
            bucket_region: Some(s3.settings.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner {
            display_name: Some(who.clone()),
            id: Some(who),
        }),
        ..Default::default()
    }))
}

pub(crate) async fn create_bucket(
    s3: &CairnS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let who = caller(&req)?;
    let name = BucketName::new(req.input.bucket.clone()).map_err(|e| s3_error!(InvalidBucketName, "{}", e.reason))?;
    if let Some(loc) = req
        .input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
    {
        if loc.as_str() != s3.settings.region && !(loc.as_str().is_empty() && s3.settings.region == "us-east-1") {
            return Err(s3_error!(
                InvalidLocationConstraint,
                "the specified location constraint is not valid for this region ({})",
                s3.settings.region
            ));
        }
    }
    s3.store.create_bucket(&name, &who).await.s3()?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub(crate) async fn head_bucket(
    s3: &CairnS3,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    s3.store.bucket(&req.input.bucket).await.s3()?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(s3.settings.region.clone()),
        ..Default::default()
    }))
}

pub(crate) async fn delete_bucket(
    s3: &CairnS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    s3.store.delete_bucket(&req.input.bucket).await.s3()?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(crate) async fn get_bucket_location(
    s3: &CairnS3,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    s3.store.bucket(&req.input.bucket).await.s3()?;
    // us-east-1 is reported as an empty location constraint, as AWS does.
    let location_constraint =
        (s3.settings.region != "us-east-1").then(|| BucketLocationConstraint::from(s3.settings.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}

/// Versioning has never been enabled on any bucket (it is not supported yet): S3 answers an
/// empty configuration for such buckets, and clients such as rclone ask before deleting.
pub(crate) async fn get_bucket_versioning(
    s3: &CairnS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    s3.store.bucket(&req.input.bucket).await.s3()?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}
