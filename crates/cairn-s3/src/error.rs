//! The one place where Cairn's errors become S3 errors.

use cairn::Error;
use s3s::{s3_error, S3Error};

/// Maps a [`cairn::Error`] to the S3 error a client expects. Metadata unavailability is 503
/// (clients retry); only real storage failures are 500.
pub(crate) fn to_s3(e: Error) -> S3Error {
    match e {
        Error::NoSuchBucket => s3_error!(NoSuchBucket),
        Error::NoSuchKey => s3_error!(NoSuchKey),
        Error::NoSuchUpload => s3_error!(NoSuchUpload),
        Error::BucketAlreadyExists => s3_error!(BucketAlreadyExists),
        Error::BucketAlreadyOwnedByYou => s3_error!(BucketAlreadyOwnedByYou),
        Error::BucketNotEmpty => s3_error!(BucketNotEmpty),
        Error::PreconditionFailed => s3_error!(PreconditionFailed),
        Error::InvalidPart(n) => s3_error!(InvalidPart, "part {n} could not be found or its ETag does not match"),
        Error::InvalidPartOrder => s3_error!(InvalidPartOrder),
        Error::EntityTooSmall(n) => s3_error!(EntityTooSmall, "part {n} is smaller than the minimum allowed size"),
        Error::KeyExists => s3_error!(InvalidRequest, "access key exists"),
        Error::NoSuchAccessKey => s3_error!(InvalidAccessKeyId),
        Error::InvalidStorageClass(_) => s3_error!(InvalidStorageClass, "The storage class you specified is not valid"),
        Error::NoSuchStorageNode => s3_error!(InvalidRequest, "no such storage node"),
        Error::Body(m) => s3_error!(IncompleteBody, "{m}"),
        Error::TooLarge(_) => s3_error!(EntityTooLarge),
        Error::Invalid(m) => s3_error!(InvalidRequest, "{m}"),
        Error::SourceChanged => s3_error!(
            OperationAborted,
            "A conflicting operation replaced the copy source during the copy. Please try again."
        ),
        Error::Unavailable(m) => {
            tracing::warn!(error = %m, "unavailable");
            s3_error!(ServiceUnavailable, "please retry")
        }
        Error::Storage(m) => {
            tracing::error!(error = %m, "storage failure");
            s3_error!(InternalError, "storage failure")
        }
    }
}

/// `?`-friendly conversion.
pub(crate) trait S3ResultExt<T> {
    fn s3(self) -> Result<T, S3Error>;
}

impl<T> S3ResultExt<T> for Result<T, Error> {
    fn s3(self) -> Result<T, S3Error> {
        self.map_err(to_s3)
    }
}
